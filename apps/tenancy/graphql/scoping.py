"""Who the GraphQL caller is in tenancy terms: the tenants it may see, the tenant it acts for, and the permission
checks (`requires(...)`) of the tenancy resolvers — the same rules as the tenancy REST views."""

from __future__ import annotations

import uuid
from typing import Any

import graphene
from django.db.models import QuerySet

from apps.tenancy import selectors, services
from apps.tenancy.context import require_tenant, resolve_tenant
from apps.tenancy.models import Membership, Role, Tenant
from apps.tenancy.permissions import has_role
from llm_infra_django.errors import AuthorizationError, NotFoundError
from llm_infra_django.graphql import Check


def caller_tenant_ids(info: graphene.ResolveInfo) -> list[Any] | None:
    """Ids of the tenants the caller belongs to (an API key: its tenant; a superuser: None = all)."""
    request = info.context
    key = getattr(request, "auth", None)
    if key is not None:
        return [key.tenant_id]
    user = request.user
    if not getattr(user, "is_authenticated", False):
        return []
    if user.is_superuser:
        return None
    cached = getattr(request, "_gql_tenant_ids", None)
    if cached is None:
        cached = list(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
        request._gql_tenant_ids = cached
    return cached


def caller_admin_tenant_ids(info: graphene.ResolveInfo) -> list[Any] | None:
    """Ids of the tenants whose administration (audit log) the caller may read: as REST's `IsTenantAdmin`, users by
    their owner/admin role, an API key in its own tenant by the role it acts with, superusers everywhere (None)."""
    request = info.context
    key = getattr(request, "auth", None)
    if key is not None:
        return [key.tenant_id] if has_role(request, resolve_tenant(request), Role.ADMIN) else []
    user = request.user
    if getattr(user, "is_superuser", False):
        return None
    if not getattr(user, "is_authenticated", False):
        return []
    cached = getattr(request, "_gql_admin_tenant_ids", None)
    if cached is None:
        cached = selectors.admin_tenant_ids(user)
        request._gql_admin_tenant_ids = cached
    return cached


class UUIDNode:
    """Mixin of the tenancy node types (before `DjangoObjectType`): an id that is no UUID finds nothing (null), as
    another tenant's id does, rather than failing the query."""

    @classmethod
    def get_node(cls, info: graphene.ResolveInfo, id: Any) -> Any:
        try:
            uuid.UUID(str(id))
        except ValueError:
            return None
        return super().get_node(info, id)  # type: ignore[misc]


def scoped(queryset: QuerySet[Any], ids: list[Any] | None, field: str) -> QuerySet[Any]:
    """`queryset` narrowed to rows whose `field` is one of `ids` (None: no narrowing)."""
    return queryset if ids is None else queryset.filter(**{f"{field}__in": ids})


def acting_tenant(info: graphene.ResolveInfo) -> Tenant:
    """The tenant the caller acts for in sharing (REST's `TenantFromContextMixin`): its API key's, the `X-Tenant`
    header's (members only) or its single membership's; an error when none can be told."""
    return require_tenant(info.context)


def tenant_by_slug(info: graphene.ResolveInfo, slug: str, *, staff_action: bool = False) -> Tenant:
    """The tenant `slug` names if the caller may see it, a 404 otherwise (REST's `TenantFromURLMixin`): an API key
    reaches its own tenant only; platform staff reach every tenant for staff actions; users their tenants."""
    request = info.context
    if getattr(request, "auth", None) is not None:
        tenant = resolve_tenant(request)
        if tenant is None or tenant.slug != slug:
            raise NotFoundError("Tenant", slug)
        return tenant
    if staff_action and services.is_platform_staff(request.user):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise NotFoundError("Tenant", slug)
        return tenant
    return selectors.get_tenant_for_user(request.user, slug)


# --- Checks for `requires(...)` -----------------------------------------------------------------------------


def platform_staff(info: graphene.ResolveInfo) -> None:
    """A check: platform staff only (REST's `IsPlatformStaff`; an API key never is)."""
    if not services.is_platform_staff(info.context.user):
        raise AuthorizationError("Only platform staff can do this.")


def acting_role(minimum: str) -> Check:
    """A check: the caller holds at least `minimum` in the tenant it acts for (REST's `IsTenant<Role>` on views
    whose tenant comes from the request's context, as sharing's)."""

    def check(info: graphene.ResolveInfo) -> None:
        if not has_role(info.context, acting_tenant(info), minimum):
            raise AuthorizationError("You do not have the role this needs in the tenant.")

    check.__doc__ = f"role {minimum} in the acting tenant"
    return check


acting_admin = acting_role(Role.ADMIN)
acting_member = acting_role(Role.VIEWER)
