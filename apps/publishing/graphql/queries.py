"""Queries of the publishing app: discovery (search, filters, facets, sort) and model-id resolution, scoped exactly
as the REST API (the same discovery selectors)."""

from __future__ import annotations

from typing import Any

import graphene
from graphene.types.generic import GenericScalar

from apps.publishing import discovery, selectors
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import ServiceVersion
from llm_infra_django.errors import AppError
from llm_infra_django.graphql import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


class ServiceVersionType(graphene.ObjectType):
    """One version of a service as consumers see it (never its upstream credential or, for them, its endpoint)."""

    id = graphene.ID(required=True)
    service_id = graphene.ID(required=True)
    model_id = graphene.String(required=True)
    publisher = graphene.String(required=True)
    name = graphene.String(required=True)
    version = graphene.String(required=True)
    status = graphene.String(required=True)
    category = graphene.String(required=True)
    description = graphene.String(required=True)
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    pricing_model = graphene.String(required=True)
    price_input_per_mtok = graphene.Decimal()
    price_output_per_mtok = graphene.Decimal()
    price_per_request = graphene.Decimal()
    sla_availability = graphene.Decimal(required=True)
    sla_max_latency_ms = graphene.Int(required=True)
    compliance_level = graphene.String(required=True)
    data_residency = graphene.List(graphene.NonNull(graphene.String), required=True)
    context_length = graphene.Int(required=True)
    published_at = graphene.DateTime()

    @staticmethod
    def of(version: ServiceVersion) -> ServiceVersionType:
        return ServiceVersionType(
            id=str(version.pk),
            service_id=str(version.service_id),
            model_id=version.model_id,
            publisher=version.service.publisher.slug,
            name=version.name,
            version=version.version,
            status=version.status,
            category=version.category,
            description=version.description,
            tags=list(version.tags or []),
            pricing_model=version.pricing_model,
            price_input_per_mtok=version.price_input_per_mtok,
            price_output_per_mtok=version.price_output_per_mtok,
            price_per_request=version.price_per_request,
            sla_availability=version.sla_availability,
            sla_max_latency_ms=version.sla_max_latency_ms,
            compliance_level=version.compliance_level,
            data_residency=list(version.data_residency or []),
            context_length=version.context_length,
            published_at=version.published_at,
        )


class ServicePage(graphene.ObjectType):
    total_count = graphene.Int(required=True)
    offset = graphene.Int(required=True)
    facets = GenericScalar(required=True, description="Counts per category, pricing model and compliance level.")
    items = graphene.List(graphene.NonNull(ServiceVersionType), required=True)


def _viewer_args(info: graphene.ResolveInfo) -> dict[str, Any]:
    request = info.context
    key = getattr(request, "auth", None)
    from apps.tenancy.context import resolve_tenant

    consumer = resolve_tenant(request)
    return {"consumer": consumer, "user": request.user, "own_tenant_ids": [key.tenant_id] if key is not None else None}


class Queries(graphene.ObjectType):
    services = graphene.Field(
        ServicePage,
        required=True,
        search=graphene.String(),
        category=graphene.String(),
        tags=graphene.List(graphene.NonNull(graphene.String)),
        pricing_model=graphene.String(),
        publisher=graphene.String(),
        sort=graphene.String(),
        first=graphene.Int(),
        offset=graphene.Int(),
        description="Services you may see (the latest active version of each; your own in every state).",
    )
    model = graphene.Field(
        ServiceVersionType,
        model_id=graphene.String(required=True),
        description="The version a model id (`publisher/service[@version]`) names.",
    )

    @staticmethod
    def resolve_services(
        root: Any, info: graphene.ResolveInfo, first: int | None = None, offset: int | None = None, **filters: Any
    ) -> ServicePage:
        params = discovery.DiscoveryParams(
            search=filters.get("search") or "",
            categories=(filters["category"],) if filters.get("category") else (),
            tags=tuple(filters.get("tags") or ()),
            pricing_models=(filters["pricing_model"],) if filters.get("pricing_model") else (),
            publisher=filters.get("publisher") or "",
            sort=filters.get("sort") or "",
            limit=max(1, min(first or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)),
            offset=max(0, offset or 0),
        )
        page = discovery.list_services(params=params, **_viewer_args(info))
        return ServicePage(
            total_count=page.count,
            offset=page.offset,
            facets=page.facets,
            items=[ServiceVersionType.of(v) for v in page.results],
        )

    @staticmethod
    def resolve_model(root: Any, info: graphene.ResolveInfo, model_id: str) -> ServiceVersionType | None:
        try:
            version = selectors.resolve_version(model_id)
        except AppError:
            return None
        viewer = discovery.viewer_of(**_viewer_args(info))
        try:
            discovery.get_visible_service(version.service_id, viewer)
        except AppError:
            return None
        if version.status not in SERVABLE and not viewer.manages(version.service):
            return None
        return ServiceVersionType.of(version)
