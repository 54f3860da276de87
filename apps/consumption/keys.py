"""API key secrets: generation, keyed hashing, and the per-process cache of authenticated keys."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.consumption.conf import consumption_settings
from apps.consumption.models import Scope
from apps.consumption.preferences import Preferences, settings_of

PREFIX = "mk_"
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
SECRET_BYTES = 32


def generate_secret() -> str:
    """`mk_` + 32 random bytes in base62 (43 characters)."""
    number = int.from_bytes(secrets.token_bytes(SECRET_BYTES), "big")
    digits = []
    while number:
        number, remainder = divmod(number, 62)
        digits.append(_ALPHABET[remainder])
    return PREFIX + "".join(reversed(digits)).rjust(43, "0")


def _hmac_key() -> bytes:
    configured = consumption_settings.KEY_HMAC_SECRET
    return (configured or f"llm-marketplace:api-keys:{settings.SECRET_KEY}").encode()


def hash_secret(secret: str) -> str:
    """HMAC-SHA-256 of the secret (hex): what is stored and looked up."""
    return hmac.new(_hmac_key(), secret.encode(), hashlib.sha256).hexdigest()


def looks_like_key(secret: str) -> bool:
    return secret.startswith(PREFIX) and 40 <= len(secret) <= 64 and secret[3:].isalnum()


@dataclass(frozen=True)
class QuotaSnapshot:
    """One of the tenant's metered limits as the proxy uses it (from the quota engine, cached with the key)."""

    limit_units: int
    action: str
    period: str


@dataclass(frozen=True)
class KeyInfo:
    """What the proxy needs of an authenticated key (no secret, no hash)."""

    id: str
    tenant_id: str
    tenant_slug: str
    tenant_operational: bool
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...]
    rpm_limit: int | None
    tpm_limit: int | None
    max_parallel: int | None
    budget_day_usd: Decimal | None
    budget_month_usd: Decimal | None
    expires_at: float | None
    revoked: bool
    tenant_timezone: str = "UTC"
    # The tenant's metered quota limits (api_requests, tokens, spend_usd), snapshotted with the key.
    quota_limits: dict[str, QuotaSnapshot] = field(default_factory=dict, compare=False)
    # A prepaid tenant's total credits (USD; None: postpaid): admission keeps what it is billed, ever, within them.
    credit_usd: Decimal | None = field(default=None, compare=False)
    # The tenant's routing settings narrowed by the key's (see preferences.py): a request narrows them further.
    routing: Preferences = field(default_factory=Preferences, compare=False)
    cached_at: float = field(default_factory=time.monotonic, compare=False)

    def usable(self, now: float | None = None) -> tuple[bool, str]:
        """(ok, reason): revoked, expired or a tenant that cannot work make a key unusable."""
        if self.revoked:
            return False, "This API key has been revoked."
        if self.expires_at is not None and (now or time.time()) >= self.expires_at:
            return False, "This API key has expired."
        if not self.tenant_operational:
            return False, "The tenant of this API key is suspended."
        return True, ""

    def has_scope(self, scope: str) -> bool:
        """Whether the key holds `scope`: the one place that decides `admin` implies every other scope."""
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def allows_model(self, model_id: str) -> bool:
        if not self.allowed_models:
            return True
        base = model_id.split("@", 1)[0]
        return model_id in self.allowed_models or base in self.allowed_models

    @classmethod
    def of(
        cls,
        key: Any,
        quota_limits: dict[str, QuotaSnapshot] | None = None,
        tenant_routing: Any = None,
        credit_usd: Decimal | None = None,
    ) -> KeyInfo:
        tenant = key.tenant
        expires: datetime | None = key.expires_at
        return cls(
            id=str(key.pk),
            tenant_id=str(tenant.pk),
            tenant_slug=tenant.slug,
            tenant_operational=tenant.is_operational,
            scopes=tuple(key.scopes or ()),
            allowed_models=tuple(key.allowed_models or ()),
            rpm_limit=key.rpm_limit,
            tpm_limit=key.tpm_limit,
            max_parallel=key.max_parallel,
            budget_day_usd=key.budget_day_usd,
            budget_month_usd=key.budget_month_usd,
            expires_at=expires.timestamp() if expires else None,
            revoked=key.revoked_at is not None and key.revoked_at <= timezone.now(),
            tenant_timezone=tenant.timezone,
            quota_limits=quota_limits or {},
            routing=settings_of(tenant_routing, getattr(key, "routing", None)),
            credit_usd=credit_usd,
        )


class KeyCache:
    """Authenticated keys by secret hash, for `KEY_CACHE_SECONDS`; revocation is enforced in Redis regardless."""

    def __init__(self) -> None:
        self._entries: dict[str, KeyInfo | None] = {}
        self._negative: dict[str, float] = {}

    def get(self, key_hash: str) -> tuple[bool, KeyInfo | None]:
        """(found, info); a cached None means "no such key" (negative caching of unknown secrets)."""
        if key_hash not in self._entries:
            return False, None
        info = self._entries[key_hash]
        cached_at = info.cached_at if info is not None else self._negative.get(key_hash, 0.0)
        if time.monotonic() - cached_at > consumption_settings.KEY_CACHE_SECONDS:
            self._entries.pop(key_hash, None)
            return False, None
        return True, info

    def put(self, key_hash: str, info: KeyInfo | None) -> None:
        if len(self._entries) > 50_000:
            self._entries.clear()
            self._negative.clear()
        self._entries[key_hash] = info
        if info is None:
            self._negative[key_hash] = time.monotonic()

    def forget(self, key_id: str | None = None) -> None:
        """Drop one key's entries (or everything)."""
        if key_id is None:
            self._entries.clear()
            self._negative.clear()
            return
        for key_hash, info in list(self._entries.items()):
            if info is not None and info.id == key_id:
                self._entries.pop(key_hash, None)

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop the entries of every key of a tenant (its credit or routing settings changed)."""
        for key_hash, info in list(self._entries.items()):
            if info is not None and info.tenant_id == tenant_id:
                self._entries.pop(key_hash, None)


key_cache = KeyCache()
