"""DRF authentication by API key (`Authorization: Bearer mk_...`) and the scope permissions every app can use."""

from __future__ import annotations

import copy
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Subquery
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from redis.exceptions import RedisError
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.consumption import admission
from apps.consumption.keys import KeyInfo, hash_secret, key_cache, looks_like_key
from apps.consumption.models import ApiKey, Scope
from apps.consumption.runtime import authenticate_sync, load_key
from llm_infra_django.errors import AuthenticationError, AuthorizationError
from llm_infra_django.redis import get_redis

# Scopes that open the management API at all: reading needs one of them, writing one of the last two.
MANAGEMENT_SCOPES = frozenset({Scope.READ, Scope.PUBLISH, Scope.ADMIN})
WRITE_SCOPES = frozenset({Scope.PUBLISH, Scope.ADMIN})


class ApiKeyPrincipal:
    """`request.user` for a key without an active creator: authenticated, but no staff, no superuser, no roles.

    It is not a user row, yet code written for users filters by it (`Membership.objects.filter(user=...)`): as an
    integer it is the sentinel id -1, which no user has, so such lookups find nothing (a 403/404 instead of a 500).
    """

    SENTINEL_ID = -1

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, key: KeyInfo) -> None:
        self.api_key = key
        self.username = f"api-key:{key.id}"

    def __str__(self) -> str:
        return self.username

    def get_username(self) -> str:
        return self.username

    def __int__(self) -> int:
        return self.SENTINEL_ID

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False

    def has_perms(self, perm_list: Any, obj: Any = None) -> bool:
        return False

    def has_module_perms(self, app_label: str) -> bool:
        return False


def _refuse_save(*args: Any, **kwargs: Any) -> None:
    raise PermissionError("The user of an API-key request is a read-only stand-in for the key's creator.")


def principal_for(key: KeyInfo) -> Any:
    """The user a key acts as: a stand-in for its creator (when still active) that holds no platform powers —
    `is_superuser` and `is_staff` are off and it cannot be saved — else an `ApiKeyPrincipal`. The tenant always
    comes from the key (`request.auth.tenant_id`), never from the user's memberships."""
    user_model = get_user_model()
    creator_id = ApiKey.objects.filter(pk=key.id).values("created_by_id")[:1]
    creator = user_model._default_manager.filter(pk=Subquery(creator_id), is_active=True).first()
    if creator is None:
        return ApiKeyPrincipal(key)
    stand_in = copy.copy(creator)
    stand_in.is_superuser = False
    stand_in.is_staff = False
    stand_in.api_key = key
    stand_in.save = _refuse_save
    return stand_in


def _revoked_now(key: KeyInfo, key_hash: str) -> bool:
    """Whether the key was revoked after it was cached: the Redis flag every revocation sets (all workers see it
    at once); without Redis the in-process flag; with Redis unreachable, the database."""
    client = get_redis()
    flag = admission.revoked_key(key.tenant_id, key.id)
    if client is None:
        return flag in admission.local.flags
    try:
        return bool(client.exists(flag))
    except (RedisError, OSError):
        fresh = load_key(key_hash)
        key_cache.put(key_hash, fresh)
        return fresh is None or not fresh.usable()[0]


def api_key_of(request: Any) -> KeyInfo | None:
    """The key that authenticated the request, or None for session (or anonymous) requests."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, KeyInfo) else None


def actor_for(request: Any) -> Any:
    """Who a service call acts as: the session user; for an API key, its creator's stand-in (so the creator's role
    in the tenant is the ceiling and the audit log names them), or None for a key without an active creator (its
    scopes, checked by the permissions, are then its whole authority)."""
    if api_key_of(request) is None:
        return request.user
    return request.user if isinstance(request.user, get_user_model()) else None


def has_scope(key: KeyInfo, scope: str) -> bool:
    """`admin` implies every other scope."""
    return scope in key.scopes or Scope.ADMIN in key.scopes


class APIKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer mk_...` → (the key's user, `KeyInfo`). Other bearer tokens and schemes are left to the
    next authenticator. A key authenticates only for its own tenant and only within its scopes: without `read`,
    `publish` or `admin` it cannot use the management API at all, and without `publish` or `admin` it cannot write.
    Views narrow this further with `HasScope`."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[Any, KeyInfo] | None:
        header = get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith("mk_"):
            return None
        if not looks_like_key(token):
            raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
        key = authenticate_sync(f"Bearer {token}")
        if _revoked_now(key, hash_secret(token)):
            raise AuthenticationError("This API key has been revoked.", code="invalid_api_key")
        writing = request.method not in SAFE_METHODS
        needed = WRITE_SCOPES if writing else MANAGEMENT_SCOPES
        if not needed.intersection(key.scopes):
            what = "write through" if writing else "use"
            raise AuthorizationError(
                f"This API key cannot {what} the management API: it needs one of the scopes "
                f"{', '.join(sorted(needed))}.",
                code="insufficient_scope",
            )
        return principal_for(key), key

    def authenticate_header(self, request: Request) -> str:
        return f'{self.keyword} realm="api"'


class HasScope(BasePermission):
    """For requests authenticated by an API key: `read_scope` for safe methods, `write_scope` otherwise (`admin`
    implies both). Session requests pass (tenant role permissions decide for them). Use `HasScope.of(...)` for other
    pairs, e.g. `HasScope.of(read=Scope.READ, write=Scope.PUBLISH)` on publishing views."""

    read_scope: str = Scope.READ
    write_scope: str = Scope.ADMIN
    message = "This API key lacks the scope this needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        key = api_key_of(request)
        if key is None:
            return True
        needed = self.read_scope if request.method in SAFE_METHODS else self.write_scope
        if has_scope(key, needed):
            return True
        self.message = f"This API key lacks the '{needed}' scope."
        return False

    @classmethod
    def of(cls, *, read: str = Scope.READ, write: str = Scope.ADMIN) -> type[HasScope]:
        """A `HasScope` needing `read` for safe methods and `write` for the others."""
        return type(f"HasScope_{read}_{write}", (cls,), {"read_scope": read, "write_scope": write})


HasReadScope = HasScope.of(read=Scope.READ, write=Scope.ADMIN)
HasPublishScope = HasScope.of(read=Scope.READ, write=Scope.PUBLISH)
HasAdminScope = HasScope.of(read=Scope.ADMIN, write=Scope.ADMIN)


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the OpenAPI document describes the API key authentication."""

    target_class = "apps.consumption.authentication.APIKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mk_<43 base62 characters>",
            "description": "A tenant's API key. Scopes: `read` for GET, `admin` for key management, `publish` for "
            "publishing writes; `admin` implies all.",
        }
