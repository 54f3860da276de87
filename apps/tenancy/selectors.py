"""Reads of the tenancy app."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, QuerySet
from django.utils import timezone

from apps.tenancy import quotas
from apps.tenancy.models import (
    AccessRequest,
    AuditLog,
    Grant,
    Membership,
    Role,
    SharingPolicy,
    Tenant,
)
from llm_infra_django.errors import NotFoundError


def get_role(tenant: Tenant, user: Any) -> str | None:
    """The user's role in the tenant (cached on the user object for the request). A principal that is no user row
    (an API key's service account) states its roles itself, as `tenant_roles` ({tenant id: role})."""
    if not getattr(user, "is_authenticated", False):
        return None
    roles = getattr(user, "tenant_roles", None)
    if roles is None:
        roles = getattr(user, "_tenancy_roles", None)
    if roles is None:
        roles = dict(Membership.objects.filter(user=user).values_list("tenant_id", "role"))
        user._tenancy_roles = roles
    return roles.get(tenant.pk)


def get_active_member(tenant_id: Any, user_id: Any) -> Any | None:
    """The user `user_id` if active and a member of the tenant (the person an API key acts for), else None."""
    return (
        get_user_model()._default_manager.filter(pk=user_id, is_active=True, memberships__tenant_id=tenant_id).first()
    )


def list_tenants_for_user(user: Any) -> QuerySet[Tenant]:
    """Tenants the user belongs to (all of them for superusers), with member counts."""
    queryset = Tenant.objects.annotate(member_count=Count("memberships", distinct=True)).order_by("slug")
    if getattr(user, "is_superuser", False):
        return queryset
    return queryset.filter(memberships__user=user)


def get_tenant_for_user(user: Any, slug: str) -> Tenant:
    """The tenant with `slug` if the user may see it; 404 otherwise (other tenants are not revealed)."""
    tenant = list_tenants_for_user(user).filter(slug=slug).first() if getattr(user, "is_authenticated", False) else None
    if tenant is None:
        raise NotFoundError("Tenant", slug)
    return tenant


def admin_tenant_ids(user: Any) -> list[Any]:
    """Ids of the tenants in which the user is owner or admin."""
    return list(
        Membership.objects.filter(user=user, role__in=[Role.OWNER, Role.ADMIN]).values_list("tenant_id", flat=True)
    )


def list_members(tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user").order_by("created_at")


def get_member(tenant: Tenant, membership_id: Any) -> Membership:
    membership = list_members(tenant).filter(pk=membership_id).first()
    if membership is None:
        raise NotFoundError("Member", membership_id)
    return membership


def list_audit_log(tenant: Tenant) -> QuerySet[AuditLog]:
    return AuditLog.objects.filter(tenant=tenant).select_related("actor").order_by("-created_at")


def list_members_of_tenants(tenant_ids: list[Any] | None) -> QuerySet[Membership]:
    """Members of several tenants (every tenant for None), each tenant's in the order of `list_members`."""
    queryset = Membership.objects.select_related("user").order_by("created_at")
    return queryset if tenant_ids is None else queryset.filter(tenant_id__in=tenant_ids)


def list_audit_log_of_tenants(tenant_ids: list[Any] | None) -> QuerySet[AuditLog]:
    """Audit entries of several tenants (every tenant for None), each tenant's in the order of `list_audit_log`."""
    queryset = AuditLog.objects.order_by("-created_at")
    return queryset if tenant_ids is None else queryset.filter(tenant_id__in=tenant_ids)


def get_usage(tenant: Tenant, now: datetime | None = None) -> dict[str, Any]:
    """Usage of the tenant's metered quotas in their current period (what `/tenants/{slug}/usage/` shows)."""
    now = now or timezone.now()
    rows = [
        {**row, "period_start": quotas.period_bounds(row["period"], tenant.timezone, now)[0]}
        for row in quotas.quota_status(tenant, now)
        if row["quota_type"] in quotas.METERED
    ]
    return {"tenant": tenant.slug, "timezone": tenant.timezone, "quotas": rows}


def list_policies_for_tenant(tenant: Tenant) -> QuerySet[SharingPolicy]:
    """Policies the tenant owns."""
    return (
        SharingPolicy.objects.filter(owner=tenant)
        .select_related("owner")
        .prefetch_related("allowed_tenants", "blocked_tenants")
    )


def list_requests_for_tenant(tenant: Tenant) -> QuerySet[AccessRequest]:
    """Requests the tenant made or received."""
    from django.db.models import Q

    return AccessRequest.objects.filter(Q(consumer=tenant) | Q(policy__owner=tenant)).select_related(
        "policy__owner", "consumer", "requested_by", "decided_by"
    )


def list_grants_for_tenant(tenant: Tenant) -> QuerySet[Grant]:
    """Grants the tenant holds or gave."""
    from django.db.models import Q

    return Grant.objects.filter(Q(consumer=tenant) | Q(policy__owner=tenant)).select_related(
        "policy__owner", "consumer"
    )
