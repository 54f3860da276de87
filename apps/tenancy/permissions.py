"""DRF permission classes by tenant role, and the `X-Tenant` header check, used by every app."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.tenancy.context import TENANT_HEADER, resolve_tenant
from apps.tenancy.models import ROLE_RANK, Role, Tenant
from apps.tenancy.selectors import get_role


def view_tenant(request: Any, view: Any) -> Tenant | None:
    """The tenant a view works on: the view's own (`get_tenant()`, e.g. from the URL) or the request's."""
    getter = getattr(view, "get_tenant", None)
    return getter() if callable(getter) else resolve_tenant(request)


def has_role(request: Any, tenant: Tenant | None, minimum: str) -> bool:
    """Superusers pass; members by their role. An API key acts in its own tenant only, with the current role of the
    person it was created for (its `request.user`), or as its tenant's service account (an admin, never an owner)."""
    if tenant is None:
        return False
    user = request.user
    if getattr(user, "is_superuser", False):
        return True
    key_tenant = getattr(request.auth, "tenant_id", None)
    if key_tenant is not None and str(key_tenant) != str(tenant.pk):
        return False
    role = get_role(tenant, user)
    return role is not None and ROLE_RANK[Role(role)] >= ROLE_RANK[Role(minimum)]


class TenantRolePermission(BasePermission):
    """Allow members of the view's tenant holding at least `minimum_role` (`write_role` for unsafe methods)."""

    minimum_role: str = Role.VIEWER
    write_role: str | None = None
    message = "You do not have the role this needs in the tenant."

    def has_permission(self, request: Any, view: Any) -> bool:
        if not getattr(request.user, "is_authenticated", False) and getattr(request, "auth", None) is None:
            return False
        needed = self.minimum_role
        if self.write_role and request.method not in SAFE_METHODS:
            needed = self.write_role
        return has_role(request, view_tenant(request, view), needed)


class IsTenantMember(TenantRolePermission):
    minimum_role = Role.VIEWER


class IsTenantContributor(TenantRolePermission):
    minimum_role = Role.MEMBER


class IsTenantAdmin(TenantRolePermission):
    minimum_role = Role.ADMIN


class IsTenantOwner(TenantRolePermission):
    minimum_role = Role.OWNER


class IsTenantMemberReadAdminWrite(TenantRolePermission):
    """Members read; admins change."""

    minimum_role = Role.VIEWER
    write_role = Role.ADMIN


class IsPlatformStaff(BasePermission):
    message = "Only platform staff can do this."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(getattr(user, "is_authenticated", False) and (user.is_staff or user.is_superuser))


class TenantHeaderCheckMixin(APIView):
    """A view base refusing a request whose `X-Tenant` header names a tenant the caller may not act for (403), on
    every action and before any other permission, not only where the view uses the tenant."""

    def check_permissions(self, request: Request) -> None:
        if request.headers.get(TENANT_HEADER, "").strip():
            resolve_tenant(request)
        super().check_permissions(request)
