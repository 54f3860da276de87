"""Mutations of tenants, members and quota overrides: each validates its input with the REST API's serializer and
calls the same service as the REST view, with the same permissions (declared once, by `requires`)."""

from __future__ import annotations

from typing import Any

import graphene

from apps.tenancy import quotas, services
from apps.tenancy.api import serializers
from apps.tenancy.graphql.scoping import platform_staff, tenant_by_slug
from apps.tenancy.graphql.types import MembershipNode, QuotaType, TenantNode
from apps.tenancy.models import Membership, Tenant
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import NotFoundError
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql import FieldError, key_scope, mutation, node_pk, requires, session_only

tenant_admin_scope = key_scope("admin")


class TenancyPayload(graphene.Mutation):
    """Base of the tenancy mutation payloads: `errors` lists validation and domain errors (empty on success)."""

    class Meta:
        abstract = True

    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @staticmethod
    def resolve_errors(root: Any, info: graphene.ResolveInfo) -> list[FieldError]:
        return root.errors or []


def context(info: graphene.ResolveInfo) -> dict[str, Any]:
    """The serializer context the REST views give (the request)."""
    return {"request": info.context}


def quota_row(tenant: Tenant, quota_type: str) -> QuotaType:
    """One quota of the tenant as `/tenants/{slug}/quotas/{type}/` shows it."""
    for row in quotas.quota_status(tenant):
        if row["quota_type"] == quota_type:
            return QuotaType(**row)
    raise NotFoundError("Quota", quota_type)


def membership(info: graphene.ResolveInfo, member_id: str) -> Membership:
    """A membership of a tenant the caller belongs to (404 otherwise)."""
    pk = node_pk(member_id, "MembershipNode", "Member")
    found = MembershipNode.get_queryset(Membership.objects.filter(pk=pk), info).first()
    if found is None:
        raise NotFoundError("Member", member_id)
    return found


# --- Tenants -------------------------------------------------------------------------------------------------


class TenantCreate(TenancyPayload):
    """Create a tenant (from a user session); the caller becomes its owner."""

    class Arguments:
        name = graphene.String(required=True)
        slug = graphene.String(required=True)
        tier = graphene.String()
        region = graphene.String()
        timezone = graphene.String()
        currency = graphene.String()

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(session_only)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, **values: Any) -> TenantCreate:
        data = validated(serializers.TenantCreateSerializer, values, context(info))
        tenant = services.create_tenant(
            owner=info.context.user,
            name=data["name"],
            slug=data["slug"],
            tier=data.get("tier"),
            region=data.get("region", ""),
            timezone_name=data.get("timezone", "UTC"),
            currency=data.get("currency", "USD"),
        )
        return cls(tenant=tenant)


class TenantUpdate(TenancyPayload):
    """Change a tenant's profile (admins and owners)."""

    class Arguments:
        slug = graphene.String(required=True)
        name = graphene.String()
        region = graphene.String()
        timezone = graphene.String()
        currency = graphene.String()

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, **values: Any) -> TenantUpdate:
        tenant = tenant_by_slug(info, slug)
        data = validated(serializers.TenantUpdateSerializer, values, context(info))
        return cls(tenant=services.update_tenant(tenant=tenant, actor=info.context.user, **data))


class TenantChangeTier(TenancyPayload):
    """Move a tenant to another tier (owners); its limits follow, quota overrides stay."""

    class Arguments:
        slug = graphene.String(required=True)
        tier = graphene.String(required=True)

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, **values: Any) -> TenantChangeTier:
        tenant = tenant_by_slug(info, slug)
        data = validated(serializers.TierChangeSerializer, values, context(info))
        return cls(tenant=services.change_tier(tenant=tenant, tier=data["tier"], actor=info.context.user))


class TenantSuspend(TenancyPayload):
    """Suspend a tenant (platform staff): its keys and services stop answering until it is reactivated."""

    class Arguments:
        slug = graphene.String(required=True)
        reason = graphene.String(required=True)

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, platform_staff)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, **values: Any) -> TenantSuspend:
        tenant = tenant_by_slug(info, slug, staff_action=True)
        data = validated(serializers.SuspendSerializer, values, context(info))
        return cls(tenant=services.suspend_tenant(tenant=tenant, actor=info.context.user, reason=data["reason"]))


class TenantReactivate(TenancyPayload):
    """Lift a suspension or end a trial (platform staff)."""

    class Arguments:
        slug = graphene.String(required=True)

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, platform_staff)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str) -> TenantReactivate:
        tenant = tenant_by_slug(info, slug, staff_action=True)
        return cls(tenant=services.reactivate_tenant(tenant=tenant, actor=info.context.user))


class TenantDeactivate(TenancyPayload):
    """Close a tenant for good (its owners or platform staff)."""

    class Arguments:
        slug = graphene.String(required=True)

    tenant = graphene.Field(TenantNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str) -> TenantDeactivate:
        tenant = tenant_by_slug(info, slug, staff_action=True)
        return cls(tenant=services.deactivate_tenant(tenant=tenant, actor=info.context.user))


# --- Members -------------------------------------------------------------------------------------------------


class MemberAdd(TenancyPayload):
    """Add a user (by username or email) to a tenant: admins add members, admins and viewers; owners add owners."""

    class Arguments:
        tenant_slug = graphene.String(required=True)
        username = graphene.String()
        email = graphene.String()
        role = graphene.String(required=True)

    member = graphene.Field(MembershipNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, tenant_slug: str, **values: Any) -> MemberAdd:
        tenant = tenant_by_slug(info, tenant_slug)
        data = validated(serializers.MemberCreateSerializer, values, context(info))
        user = services.find_user(username=data.get("username"), email=data.get("email"))
        member = services.add_member(tenant=tenant, user=user, role=data["role"], actor=info.context.user)
        return cls(member=member)


class MemberRoleChange(TenancyPayload):
    """Change a member's role (admins; only owners make or unmake owners; the last owner stays)."""

    class Arguments:
        member_id = graphene.ID(required=True)
        role = graphene.String(required=True)

    member = graphene.Field(MembershipNode)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, member_id: str, **values: Any) -> MemberRoleChange:
        found = membership(info, member_id)
        data = validated(serializers.MemberUpdateSerializer, values, context(info))
        return cls(member=services.change_member_role(membership=found, role=data["role"], actor=info.context.user))


class MemberRemove(TenancyPayload):
    """Remove a member (admins; any member may remove itself; the last owner cannot leave)."""

    class Arguments:
        member_id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, member_id: str) -> MemberRemove:
        services.remove_member(membership=membership(info, member_id), actor=info.context.user)
        return cls(ok=True)


# --- Quota overrides -----------------------------------------------------------------------------------------


class QuotaOverrideSet(TenancyPayload):
    """Replace a tier limit (and optionally its action) for one tenant (platform staff)."""

    class Arguments:
        tenant_slug = graphene.String(required=True)
        quota_type = graphene.String(required=True)
        limit = GqlDecimal(required=True, description="A number ≥ 0, or -1 for unlimited.")
        action = graphene.String(description="Empty keeps the tier's action.")

    quota = graphene.Field(QuotaType)

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, platform_staff)
    def mutate(
        cls, root: Any, info: graphene.ResolveInfo, tenant_slug: str, quota_type: str, **values: Any
    ) -> QuotaOverrideSet:
        tenant = tenant_by_slug(info, tenant_slug, staff_action=True)
        data = validated(serializers.QuotaOverrideSerializer, values, context(info))
        services.set_quota_override(
            tenant=tenant,
            quota_type=quota_type,
            limit=data["limit"],
            action=data.get("action") or None,
            actor=info.context.user,
        )
        return cls(quota=quota_row(tenant, quota_type))


class QuotaOverrideDelete(TenancyPayload):
    """Return one quota of a tenant to its tier default (platform staff)."""

    class Arguments:
        tenant_slug = graphene.String(required=True)
        quota_type = graphene.String(required=True)

    ok = graphene.Boolean(required=True)
    quota = graphene.Field(QuotaType, description="The quota as it now stands.")

    @classmethod
    @mutation()
    @requires(tenant_admin_scope, platform_staff)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, tenant_slug: str, quota_type: str) -> QuotaOverrideDelete:
        tenant = tenant_by_slug(info, tenant_slug, staff_action=True)
        services.clear_quota_override(tenant=tenant, quota_type=quota_type, actor=info.context.user)
        return cls(ok=True, quota=quota_row(tenant, quota_type))


class TenantMutations(graphene.ObjectType):
    tenant_create = TenantCreate.Field()
    tenant_update = TenantUpdate.Field()
    tenant_change_tier = TenantChangeTier.Field()
    tenant_suspend = TenantSuspend.Field()
    tenant_reactivate = TenantReactivate.Field()
    tenant_deactivate = TenantDeactivate.Field()
    member_add = MemberAdd.Field()
    member_role_change = MemberRoleChange.Field()
    member_remove = MemberRemove.Field()
    quota_override_set = QuotaOverrideSet.Field()
    quota_override_delete = QuotaOverrideDelete.Field()
