"""GraphQL types of tenants, members, quotas, usage and the audit log; every queryset is scoped to what the caller
may see, and nested lists load for a whole page of tenants at once."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import QuerySet
from graphene import relay
from graphene_django import DjangoObjectType

from apps.tenancy import quotas, selectors
from apps.tenancy.graphql.scoping import UUIDNode, caller_admin_tenant_ids, caller_tenant_ids, scoped
from apps.tenancy.models import AuditLog, Membership, Tenant
from llm_infra_django.graphql import CountedConnection, PagedConnectionField
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql.nested import nested_connection

__all__ = [
    "AuditLogConnection",
    "AuditLogNode",
    "MembershipConnection",
    "MembershipNode",
    "QuotaType",
    "TenantConnection",
    "TenantNode",
    "TenantUsage",
    "caller_admin_tenant_ids",
    "caller_tenant_ids",
]


class QuotaType(graphene.ObjectType):
    quota_type = graphene.String(required=True)
    period = graphene.String(required=True)
    limit = GqlDecimal(required=True, description="-1 means unlimited.")
    action = graphene.String(required=True)
    used = GqlDecimal(required=True)
    remaining = GqlDecimal()
    percentage = graphene.Float()
    resets_at = graphene.DateTime()
    soft_limit_reached = graphene.Boolean(required=True)


class TenantUsageQuota(QuotaType):
    """A metered quota in its current period."""

    period_start = graphene.DateTime(required=True)


class TenantUsage(graphene.ObjectType):
    """Usage of the metered quotas in their current period (calendar periods in the tenant's time zone)."""

    tenant = graphene.String(required=True, description="Slug of the tenant.")
    timezone = graphene.String(required=True)
    quotas = graphene.List(graphene.NonNull(TenantUsageQuota), required=True)


class MembershipNode(UUIDNode, DjangoObjectType):
    username = graphene.String(required=True)
    email = graphene.String(required=True)

    class Meta:
        model = Membership
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "role", "created_at")

    @staticmethod
    def resolve_username(root: Membership, info: graphene.ResolveInfo) -> str:
        return root.user.username

    @staticmethod
    def resolve_email(root: Membership, info: graphene.ResolveInfo) -> str:
        return root.user.email

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return scoped(queryset, caller_tenant_ids(info), "tenant_id").select_related("user")


class AuditLogNode(UUIDNode, DjangoObjectType):
    actor = graphene.String(required=True)

    class Meta:
        model = AuditLog
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "action", "object_type", "object_id", "before", "after", "request_id", "created_at")

    @staticmethod
    def resolve_actor(root: AuditLog, info: graphene.ResolveInfo) -> str:
        return root.actor_label

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return scoped(queryset, caller_admin_tenant_ids(info), "tenant_id")


class TenantNode(UUIDNode, DjangoObjectType):
    members = PagedConnectionField(lambda: MembershipConnection, description="Any member reads them.")
    quotas = graphene.List(graphene.NonNull(QuotaType), required=True)
    usage = graphene.Field(TenantUsage, required=True)
    audit_log = PagedConnectionField(
        lambda: AuditLogConnection, description="Newest first; owners and admins (empty for other roles)."
    )
    my_role = graphene.String()

    class Meta:
        model = Tenant
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "name",
            "slug",
            "tier",
            "status",
            "region",
            "timezone",
            "currency",
            "trial_ends_at",
            "suspension_reason",
            "trusted_publisher",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return scoped(queryset, caller_tenant_ids(info), "pk")

    @staticmethod
    def resolve_members(root: Tenant, info: graphene.ResolveInfo, **args: Any) -> Any:
        members = selectors.list_members_of_tenants(caller_tenant_ids(info))
        return nested_connection(info, root, "members", members, "tenant_id", MembershipConnection, args)

    @staticmethod
    def resolve_audit_log(root: Tenant, info: graphene.ResolveInfo, **args: Any) -> Any:
        entries = selectors.list_audit_log_of_tenants(caller_admin_tenant_ids(info))
        return nested_connection(info, root, "audit_log", entries, "tenant_id", AuditLogConnection, args)

    @staticmethod
    def resolve_quotas(root: Tenant, info: graphene.ResolveInfo) -> list[QuotaType]:
        return [QuotaType(**row) for row in quotas.quota_status(root)]

    @staticmethod
    def resolve_usage(root: Tenant, info: graphene.ResolveInfo) -> TenantUsage:
        usage = selectors.get_usage(root)
        return TenantUsage(
            tenant=usage["tenant"],
            timezone=usage["timezone"],
            quotas=[TenantUsageQuota(**row) for row in usage["quotas"]],
        )

    @staticmethod
    def resolve_my_role(root: Tenant, info: graphene.ResolveInfo) -> str | None:
        return selectors.get_role(root, info.context.user)


class MembershipConnection(CountedConnection):
    class Meta:
        node = MembershipNode


class AuditLogConnection(CountedConnection):
    class Meta:
        node = AuditLogNode


class TenantConnection(CountedConnection):
    class Meta:
        node = TenantNode
