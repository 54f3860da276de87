"""The first stage of a proxied call: the presented API key, authenticated from this process's cache (no SQL once
warm) or the database, with its tenant's metered limits."""

from __future__ import annotations

import hmac

from django.utils import timezone

from apps.consumption import credits
from apps.consumption.keys import KeyInfo, QuotaSnapshot, hash_secret, key_cache, looks_like_key
from apps.consumption.models import ApiKey, TenantRouting
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AuthenticationError, AuthorizationError

METERED = ("api_requests", "tokens", "spend_usd")


def bearer_secret(authorization: str | None) -> str:
    """The secret of an `Authorization: Bearer <secret>` header."""
    if not authorization:
        raise AuthenticationError(
            "Provide your API key in the Authorization header (Bearer mk_...).", code="missing_api_key"
        )
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise AuthenticationError("Use 'Authorization: Bearer <API key>'.", code="invalid_api_key")
    return secret.strip()


def load_key(key_hash: str) -> KeyInfo | None:
    """The key with this hash, with its tenant's metered limits (a database read on cache misses only)."""
    from apps.tenancy import quotas

    key = ApiKey.objects.select_related("tenant").filter(key_hash=key_hash).first()
    if key is None or not hmac.compare_digest(key.key_hash, key_hash):
        return None
    limits = quotas.get_limits(key.tenant)
    snapshots = {}
    for name in METERED:
        limit = limits.get(name) or quotas.get_limit(key.tenant, name)
        snapshots[name] = QuotaSnapshot(limit_units=limit.limit_units, action=limit.action, period=limit.period)
    if key.last_used_at is None or (timezone.now() - key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    routing = TenantRouting.objects.filter(tenant_id=key.tenant_id).values_list("routing", flat=True).first()
    return KeyInfo.of(key, snapshots, tenant_routing=routing, credit_usd=credits.credited(str(key.tenant_id)))


def _key_hash(authorization: str | None) -> str:
    secret = bearer_secret(authorization)
    if not looks_like_key(secret):
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
    return hash_secret(secret)


def _usable(info: KeyInfo | None) -> KeyInfo:
    if info is None:
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
    usable, reason = info.usable()
    if not usable:
        raise AuthenticationError(reason, code="invalid_api_key")
    return info


async def authenticate(authorization: str | None) -> KeyInfo:
    """The usable key of the request, or 401 (a database read only when the key is not cached)."""
    key_hash = _key_hash(authorization)
    found, info = key_cache.get(key_hash)
    if not found:
        info = await database_sync_to_async(load_key)(key_hash)
        key_cache.put(key_hash, info)
    return _usable(info)


def authenticate_sync(authorization: str | None) -> KeyInfo:
    """`authenticate` for synchronous callers (the DRF authentication class)."""
    key_hash = _key_hash(authorization)
    found, info = key_cache.get(key_hash)
    if not found:
        info = load_key(key_hash)
        key_cache.put(key_hash, info)
    return _usable(info)


def require_scope(key: KeyInfo, scope: str) -> None:
    if not key.has_scope(scope):
        raise AuthorizationError(f"This API key lacks the '{scope}' scope.", code="insufficient_scope")
