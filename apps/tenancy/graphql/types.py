"""GraphQL types of the tenancy app; every queryset is scoped to what the caller may see."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import QuerySet
from graphene import relay
from graphene_django import DjangoObjectType

from apps.tenancy import quotas, selectors
from apps.tenancy.models import AuditLog, Membership, Role, Tenant
from llm_infra_django.graphql import CountedConnection, PagedConnectionField


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
    request = info.context
    key = getattr(request, "auth", None)
    if key is not None:
        return [key.tenant_id] if "admin" in key.scopes else []
    user = request.user
    if getattr(user, "is_superuser", False):
        return None
    return selectors.admin_tenant_ids(user) if getattr(user, "is_authenticated", False) else []


def _scoped(queryset: QuerySet[Any], ids: list[Any] | None, field: str) -> QuerySet[Any]:
    return queryset if ids is None else queryset.filter(**{f"{field}__in": ids})


class QuotaType(graphene.ObjectType):
    quota_type = graphene.String(required=True)
    period = graphene.String(required=True)
    limit = graphene.Decimal(required=True, description="-1 means unlimited.")
    action = graphene.String(required=True)
    used = graphene.Decimal(required=True)
    remaining = graphene.Decimal()
    percentage = graphene.Float()
    resets_at = graphene.DateTime()
    soft_limit_reached = graphene.Boolean(required=True)


class MembershipNode(DjangoObjectType):
    username = graphene.String(required=True)

    class Meta:
        model = Membership
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "role", "created_at")

    @staticmethod
    def resolve_username(root: Membership, info: graphene.ResolveInfo) -> str:
        return root.user.username

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return _scoped(queryset, caller_tenant_ids(info), "tenant_id").select_related("user")


class AuditLogNode(DjangoObjectType):
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
        return _scoped(queryset, caller_admin_tenant_ids(info), "tenant_id")


class TenantNode(DjangoObjectType):
    members = PagedConnectionField(lambda: MembershipConnection)
    quotas = graphene.List(graphene.NonNull(QuotaType), required=True)
    audit_log = PagedConnectionField(lambda: AuditLogConnection)
    my_role = graphene.String()

    class Meta:
        model = Tenant
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "name", "slug", "tier", "status", "region", "timezone", "currency", "trial_ends_at",
                  "created_at")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return _scoped(queryset, caller_tenant_ids(info), "pk")

    @staticmethod
    def resolve_members(root: Tenant, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        prefetched = getattr(root, "_prefetched_objects_cache", {}).get("memberships")
        if prefetched is not None:
            return list(prefetched)
        return MembershipNode.get_queryset(selectors.list_members(root), info)

    @staticmethod
    def resolve_quotas(root: Tenant, info: graphene.ResolveInfo) -> list[QuotaType]:
        return [QuotaType(**row) for row in quotas.quota_status(root)]

    @staticmethod
    def resolve_audit_log(root: Tenant, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        return AuditLogNode.get_queryset(selectors.list_audit_log(root), info)

    @staticmethod
    def resolve_my_role(root: Tenant, info: graphene.ResolveInfo) -> str | None:
        user = info.context.user
        role = selectors.get_role(root, user) if getattr(user, "is_authenticated", False) else None
        return role or (Role.ADMIN if getattr(info.context, "auth", None) is not None else None)


class MembershipConnection(CountedConnection):
    class Meta:
        node = MembershipNode


class AuditLogConnection(CountedConnection):
    class Meta:
        node = AuditLogNode


class TenantConnection(CountedConnection):
    class Meta:
        node = TenantNode
