"""Queries of the tenancy app."""

from __future__ import annotations

from typing import Any

import graphene
from graphene import relay

from apps.tenancy.graphql.types import TenantConnection, TenantNode
from apps.tenancy.models import Tenant
from llm_infra_django.graphql import PagedConnectionField


class Queries(graphene.ObjectType):
    node = relay.Node.Field()
    tenants = PagedConnectionField(TenantConnection, description="Tenants the caller belongs to.")
    tenant = graphene.Field(TenantNode, slug=graphene.String(required=True))

    @staticmethod
    def resolve_tenants(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        return TenantNode.get_queryset(Tenant.objects.order_by("slug"), info).prefetch_related(
            "memberships__user"
        )

    @staticmethod
    def resolve_tenant(root: Any, info: graphene.ResolveInfo, slug: str) -> Tenant | None:
        return TenantNode.get_queryset(Tenant.objects.filter(slug=slug), info).first()
