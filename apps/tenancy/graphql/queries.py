"""Queries of the tenancy app: tenants (members, quotas, usage, audit log nested) and sharing, scoped by the same
selectors, filters and permissions as the REST API."""

from __future__ import annotations

from typing import Any

import django_filters
import graphene
from django.db.models import QuerySet

from apps.tenancy import selectors
from apps.tenancy.api import filters
from apps.tenancy.graphql.scoping import acting_member, acting_tenant
from apps.tenancy.graphql.sharing_types import (
    AccessGrantConnection,
    AccessRequestConnection,
    SharingPolicyConnection,
    requests_with_grants,
)
from apps.tenancy.graphql.types import TenantConnection, TenantNode
from apps.tenancy.models import Tenant
from llm_infra_django.errors import ValidationError
from llm_infra_django.graphql import PagedConnectionField, node_field, requires

PAGING = frozenset({"first", "last", "before", "after"})


def filtered(
    filterset_class: type[django_filters.FilterSet],
    queryset: QuerySet[Any],
    info: graphene.ResolveInfo,
    arguments: dict[str, Any],
) -> QuerySet[Any]:
    """`queryset` narrowed by the REST list's own filter set (invalid values: an error naming the argument)."""
    data = {name: value for name, value in arguments.items() if name not in PAGING and value is not None}
    filterset = filterset_class(data, queryset=queryset, request=info.context)
    if not filterset.is_valid():
        raise ValidationError(fields={name: list(messages) for name, messages in filterset.errors.items()})
    return filterset.qs


class Queries(graphene.ObjectType):
    node = node_field()
    tenants = PagedConnectionField(
        TenantConnection,
        status=graphene.String(),
        tier=graphene.String(),
        description="Tenants the caller belongs to (an API key: its own; platform superusers: all).",
    )
    tenant = graphene.Field(TenantNode, slug=graphene.String(required=True))
    sharing_policies = PagedConnectionField(
        SharingPolicyConnection,
        visibility=graphene.String(),
        resource_type=graphene.String(),
        description="Sharing policies of the resources the acting tenant provides.",
    )
    access_requests = PagedConnectionField(
        AccessRequestConnection,
        status=graphene.String(),
        direction=graphene.String(description="`made` by the acting tenant or `received` on its policies."),
        description="Access requests the acting tenant made or received.",
    )
    access_grants = PagedConnectionField(
        AccessGrantConnection,
        status=graphene.String(),
        direction=graphene.String(description="`held` by the acting tenant or `given` on its policies."),
        description="Grants the acting tenant holds or gave.",
    )

    @staticmethod
    @requires()
    def resolve_tenants(root: Any, info: graphene.ResolveInfo, **arguments: Any) -> Any:
        key = getattr(info.context, "auth", None)
        if key is not None:
            tenants = Tenant.objects.filter(pk=key.tenant_id).order_by("slug")
        else:
            tenants = selectors.list_tenants_for_user(info.context.user).order_by("slug")
        return filtered(filters.TenantFilter, tenants, info, arguments)

    @staticmethod
    @requires()
    def resolve_tenant(root: Any, info: graphene.ResolveInfo, slug: str) -> Tenant | None:
        return TenantNode.get_queryset(Tenant.objects.filter(slug=slug), info).first()

    @staticmethod
    @requires(acting_member)
    def resolve_sharing_policies(root: Any, info: graphene.ResolveInfo, **arguments: Any) -> Any:
        policies = selectors.list_policies_for_tenant(acting_tenant(info)).order_by("-created_at", "pk")
        return filtered(filters.SharingPolicyFilter, policies, info, arguments)

    @staticmethod
    @requires(acting_member)
    def resolve_access_requests(root: Any, info: graphene.ResolveInfo, **arguments: Any) -> Any:
        requests = requests_with_grants(selectors.list_requests_for_tenant(acting_tenant(info)))
        return filtered(filters.AccessRequestFilter, requests.order_by("-created_at", "pk"), info, arguments)

    @staticmethod
    @requires(acting_member)
    def resolve_access_grants(root: Any, info: graphene.ResolveInfo, **arguments: Any) -> Any:
        grants = selectors.list_grants_for_tenant(acting_tenant(info)).order_by("-granted_at", "pk")
        return filtered(filters.GrantFilter, grants, info, arguments)
