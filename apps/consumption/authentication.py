"""DRF authentication by API key (`Authorization: Bearer mk_...`) and the scope permissions every app can use."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request

from apps.consumption import flags
from apps.consumption.key_lookup import authenticate_sync
from apps.consumption.keys import KeyInfo, looks_like_key
from apps.consumption.models import ApiKey, Scope
from apps.tenancy.models import Role
from apps.tenancy.selectors import get_active_member
from llm_infra_django.errors import AuthenticationError, AuthorizationError


class ApiKeyPrincipal:
    """`request.user` for a key without a creator (made by `create_api_key` without `--user`): its tenant's service
    account. It holds the tenant's admin role (never owner), which its scopes narrow; no staff, no superuser.

    It is not a user row, yet code written for users filters by it (`Membership.objects.filter(user=...)`): as an
    integer it is the sentinel id -1, which no user has, so such lookups find nothing (a 403/404 instead of a 500).
    Tenancy's role lookups read its role from `tenant_roles`; "made by" fields record no user for it.
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
        self.tenant_roles = {uuid.UUID(key.tenant_id): Role.ADMIN}

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


def principal_for(key: KeyInfo, creator_id: Any) -> Any:
    """The user a key acts as: its tenant's service account when it has no creator; else its creator, read now, as a
    stand-in holding no platform powers (`is_superuser` and `is_staff` off, cannot be saved) whose role in the tenant
    is looked up per request. A creator no longer active, or no longer a member of the key's tenant, gives the key
    no management rights (403; such keys are revoked or reduced to `consume` when their person leaves, see
    `services.revoke_keys_of`). The tenant always comes from the key (`request.auth.tenant_id`)."""
    if creator_id is None:
        return ApiKeyPrincipal(key)
    creator = get_active_member(key.tenant_id, creator_id)
    if creator is None:
        raise AuthorizationError(
            f"This API key was created by someone who is no longer an active member of tenant '{key.tenant_slug}': "
            "it cannot use the management API.",
            code="key_creator_departed",
        )
    creator.is_superuser = False
    creator.is_staff = False
    creator.api_key = key
    creator.save = _refuse_save
    return creator


def require_management_scope(key: KeyInfo, *, writing: bool) -> None:
    """A key opens the management API with `read` or `publish` to read and `publish` to write (`admin` implies
    both); views narrow this further (`HasScope`)."""
    if key.has_scope(Scope.PUBLISH) or (not writing and key.has_scope(Scope.READ)):
        return
    what, needed = ("write through", "publish or admin") if writing else ("use", "read, publish or admin")
    raise AuthorizationError(
        f"This API key cannot {what} the management API: it needs the {needed} scope.",
        code="insufficient_scope",
    )


def authenticate_key(authorization: str, *, writing: bool) -> tuple[Any, KeyInfo]:
    """(user, key) of a management request (REST or GraphQL) made with an API key: a usable key, not revoked, whose
    scopes and creator are read now (the proxy's cached view may be seconds old), acting as `principal_for` says."""
    key = authenticate_sync(authorization)
    if flags.is_revoked(key):
        raise AuthenticationError("This API key has been revoked.", code="invalid_api_key")
    current = ApiKey.objects.filter(pk=key.id).values("created_by_id", "scopes").first()
    if current is None:
        raise AuthenticationError("Incorrect API key provided.", code="invalid_api_key")
    key = replace(key, scopes=tuple(current["scopes"] or ()))
    require_management_scope(key, writing=writing)
    return principal_for(key, current["created_by_id"]), key


def api_key_of(request: Any) -> KeyInfo | None:
    """The key that authenticated the request, or None for session (or anonymous) requests."""
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, KeyInfo) else None


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
        return authenticate_key(f"Bearer {token}", writing=request.method not in SAFE_METHODS)

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
        if key.has_scope(needed):
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
