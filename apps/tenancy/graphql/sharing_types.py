"""GraphQL types of sharing: policies the acting tenant owns, access requests and grants it made or received —
scoped by the same selectors as the REST API (`/api/v1/sharing/...`)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import graphene
from django.db.models import QuerySet
from graphene import relay
from graphene_django import DjangoObjectType
from graphql_relay import to_global_id

from apps.tenancy import selectors
from apps.tenancy.graphql.scoping import UUIDNode, acting_tenant
from apps.tenancy.models import AccessRequest, Grant, SharingPolicy
from llm_infra_django.graphql import CountedConnection


def _policy_id(root: AccessRequest | Grant) -> str:
    return to_global_id("SharingPolicyNode", str(root.policy_id))


def _places(policy: SharingPolicy, name: str) -> Decimal | None:
    """A decimal field with its column's decimal places ("80.00"), also before the row is read back."""
    value = getattr(policy, name)
    if value is None:
        return None
    places = SharingPolicy._meta.get_field(name).decimal_places
    return Decimal(value).quantize(Decimal(1).scaleb(-places))


class SharingPolicyNode(UUIDNode, DjangoObjectType):
    """A sharing policy of a resource the acting tenant provides."""

    owner = graphene.String(required=True, description="Slug of the providing tenant.")
    allowed_tenants = graphene.List(graphene.NonNull(graphene.String), required=True)
    blocked_tenants = graphene.List(graphene.NonNull(graphene.String), required=True)
    regions = graphene.List(graphene.NonNull(graphene.String), required=True)

    class Meta:
        model = SharingPolicy
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "resource_type",
            "resource_id",
            "visibility",
            "tier_minimum",
            "max_cost_per_month",
            "requires_approval",
            "max_consumers",
            "expires_at",
            "provider_share_percent",
            "platform_fee_percent",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return selectors.list_policies_for_tenant(acting_tenant(info)) & queryset.all()

    @staticmethod
    def resolve_max_cost_per_month(root: SharingPolicy, info: graphene.ResolveInfo) -> Decimal | None:
        return _places(root, "max_cost_per_month")

    @staticmethod
    def resolve_provider_share_percent(root: SharingPolicy, info: graphene.ResolveInfo) -> Decimal | None:
        return _places(root, "provider_share_percent")

    @staticmethod
    def resolve_platform_fee_percent(root: SharingPolicy, info: graphene.ResolveInfo) -> Decimal | None:
        return _places(root, "platform_fee_percent")

    @staticmethod
    def resolve_owner(root: SharingPolicy, info: graphene.ResolveInfo) -> str:
        return root.owner.slug

    @staticmethod
    def resolve_allowed_tenants(root: SharingPolicy, info: graphene.ResolveInfo) -> list[str]:
        return [tenant.slug for tenant in root.allowed_tenants.all()]

    @staticmethod
    def resolve_blocked_tenants(root: SharingPolicy, info: graphene.ResolveInfo) -> list[str]:
        return [tenant.slug for tenant in root.blocked_tenants.all()]

    @staticmethod
    def resolve_regions(root: SharingPolicy, info: graphene.ResolveInfo) -> list[str]:
        return list(root.regions or [])


class AccessGrantNode(UUIDNode, DjangoObjectType):
    """A grant the acting tenant holds (as consumer) or gave (as provider)."""

    policy_id = graphene.ID(required=True, description="Node id of the sharing policy.")
    resource_type = graphene.String(required=True)
    resource_id = graphene.String(required=True)
    provider = graphene.String(required=True, description="Slug of the providing tenant.")
    consumer = graphene.String(required=True, description="Slug of the consuming tenant.")
    request_id = graphene.ID(description="Node id of the access request it answered, if any.")

    class Meta:
        model = Grant
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "status", "granted_at", "expires_at", "revoked_at")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return selectors.list_grants_for_tenant(acting_tenant(info)) & queryset.all()

    @staticmethod
    def resolve_policy_id(root: Grant, info: graphene.ResolveInfo) -> str:
        return _policy_id(root)

    @staticmethod
    def resolve_resource_type(root: Grant, info: graphene.ResolveInfo) -> str:
        return root.policy.resource_type

    @staticmethod
    def resolve_resource_id(root: Grant, info: graphene.ResolveInfo) -> str:
        return root.policy.resource_id

    @staticmethod
    def resolve_provider(root: Grant, info: graphene.ResolveInfo) -> str:
        return root.policy.owner.slug

    @staticmethod
    def resolve_consumer(root: Grant, info: graphene.ResolveInfo) -> str:
        return root.consumer.slug

    @staticmethod
    def resolve_request_id(root: Grant, info: graphene.ResolveInfo) -> str | None:
        return to_global_id("AccessRequestNode", str(root.request_id)) if root.request_id else None


class AccessRequestNode(UUIDNode, DjangoObjectType):
    """An access request the acting tenant made (as consumer) or received (as provider)."""

    policy_id = graphene.ID(required=True, description="Node id of the sharing policy.")
    resource_type = graphene.String(required=True)
    resource_id = graphene.String(required=True)
    provider = graphene.String(required=True, description="Slug of the providing tenant.")
    consumer = graphene.String(required=True, description="Slug of the requesting tenant.")
    requested_by = graphene.String(description="Username of who asked.")
    decided_by = graphene.String(description="Username of who approved or rejected.")
    grant = graphene.Field(AccessGrantNode, description="The grant an approval created, if any.")

    class Meta:
        model = AccessRequest
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = ("id", "message", "status", "decided_at", "decision_note", "created_at")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return requests_with_grants(selectors.list_requests_for_tenant(acting_tenant(info))) & queryset.all()

    @staticmethod
    def resolve_policy_id(root: AccessRequest, info: graphene.ResolveInfo) -> str:
        return _policy_id(root)

    @staticmethod
    def resolve_resource_type(root: AccessRequest, info: graphene.ResolveInfo) -> str:
        return root.policy.resource_type

    @staticmethod
    def resolve_resource_id(root: AccessRequest, info: graphene.ResolveInfo) -> str:
        return root.policy.resource_id

    @staticmethod
    def resolve_provider(root: AccessRequest, info: graphene.ResolveInfo) -> str:
        return root.policy.owner.slug

    @staticmethod
    def resolve_consumer(root: AccessRequest, info: graphene.ResolveInfo) -> str:
        return root.consumer.slug

    @staticmethod
    def resolve_requested_by(root: AccessRequest, info: graphene.ResolveInfo) -> str | None:
        return root.requested_by.username if root.requested_by_id else None

    @staticmethod
    def resolve_decided_by(root: AccessRequest, info: graphene.ResolveInfo) -> str | None:
        return root.decided_by.username if root.decided_by_id else None

    @staticmethod
    def resolve_grant(root: AccessRequest, info: graphene.ResolveInfo) -> Grant | None:
        return getattr(root, "grant", None)


def requests_with_grants(queryset: QuerySet[AccessRequest]) -> QuerySet[AccessRequest]:
    """Requests with their grants joined (as the REST view lists them), so a page nests its grants in no query."""
    return queryset.select_related("grant__policy__owner", "grant__consumer")


class SharingPolicyConnection(CountedConnection):
    class Meta:
        node = SharingPolicyNode


class AccessRequestConnection(CountedConnection):
    class Meta:
        node = AccessRequestNode


class AccessGrantConnection(CountedConnection):
    class Meta:
        node = AccessGrantNode
