"""Queries of the publishing app: discovery (search, filters, facets, sort) as a Relay connection, one service,
versions, publishing status and model-id resolution — scoped exactly as the REST API (the same selectors)."""

from __future__ import annotations

import functools
from typing import Any

import graphene
from graphene.relay.connection import connection_adapter, page_info_adapter
from graphql_relay import connection_from_array_slice, cursor_to_offset

from apps.publishing import discovery, selectors
from apps.publishing.api.serializers import DiscoveryQuerySerializer
from apps.publishing.graphql.types import (
    ServiceConnection,
    ServiceNode,
    ServiceStatusType,
    ServiceVersionNode,
    runs_of,
    viewer,
)
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import ServiceVersion
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import AppError, AuthorizationError, ValidationError
from llm_infra_django.graphql import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    PagedConnectionField,
    announce,
    key_scope,
    node_pk,
    requires,
)
from llm_infra_django.graphql import Decimal as GqlDecimal

List = graphene.List
Str = graphene.NonNull(graphene.String)


def _offset_and_limit(first: int | None, after: str | None, last: int | None, before: str | None) -> tuple[int, int]:
    """Relay arguments as an offset and a page size (cursors are offsets, as graphql-relay writes them)."""
    if last is not None or before is not None:
        raise ValidationError(fields={"last": ["Page services forward with `first` and `after`."]})
    start = 0
    if after:
        offset = cursor_to_offset(after)
        if offset is None:
            raise ValidationError(fields={"after": ["Not a cursor of this connection."]})
        start = offset + 1
    size = DEFAULT_PAGE_SIZE if first is None else first
    return start, max(0, min(int(size), MAX_PAGE_SIZE))


class ServicesField(PagedConnectionField):
    """Discovery pages by offset (a page is one SQL query with LIMIT/OFFSET, facets one more): the connection is
    built from the page the selector returns, with its total and facets."""

    @classmethod
    def resolve_connection(cls, connection_type: Any, args: dict[str, Any], resolved: Any) -> Any:
        return resolved


class Queries(graphene.ObjectType):
    services = ServicesField(
        ServiceConnection,
        required=True,
        search=graphene.String(description="Full-text search over name, description and tags."),
        category=List(Str),
        tags=List(Str, description="Services having any of these tags."),
        pricing_model=List(Str),
        max_price=GqlDecimal(description="Highest effective price (per 1M output tokens, or per request)."),
        min_availability=GqlDecimal(),
        max_latency_ms=graphene.Int(),
        compliance_level=List(Str),
        residency=List(Str, description="Services storing data in any of these regions."),
        publisher=graphene.String(description="Slug of the publisher."),
        status=List(Str, description="Statuses (of your own services; consumers always see active ones)."),
        sort=graphene.String(description=f"One of: {', '.join(discovery.SORTS)}."),
        description="Services you may see: the latest active version of each, services shared with your tenant "
        "included; your own in every state; every service for platform staff.",
    )
    service = graphene.Field(ServiceNode, id=graphene.ID(required=True), description="A service by id.")
    model = graphene.Field(
        ServiceVersionNode,
        model_id=graphene.String(required=True),
        description="The version a model id (`publisher/service[@version]`) names.",
    )
    service_status = graphene.Field(
        ServiceStatusType,
        service_id=graphene.ID(required=True),
        version=graphene.String(description="Default: the latest version that is not retired."),
        description="A version's publishing status and validation runs (the publisher's members and staff).",
    )

    @staticmethod
    @requires(key_scope("read"))
    def resolve_services(root: Any, info: graphene.ResolveInfo, **args: Any) -> Any:
        offset, limit = _offset_and_limit(
            args.pop("first", None), args.pop("after", None), args.pop("last", None), args.pop("before", None)
        )
        query = {name: value for name, value in args.items() if value is not None}
        query = validated(DiscoveryQuerySerializer, {**query, "limit": max(1, limit), "offset": offset})
        seen = viewer(info)
        page = discovery.list_services(
            seen.consumer,
            info.context.user,
            discovery.DiscoveryParams.from_query(query),
            own_tenant_ids=seen.own_tenant_ids,
        )
        nodes = []
        for row in page.results[:limit]:
            row.service.discovery_row = row
            nodes.append(row.service)
        announce(info, nodes)
        announce(info, page.results)  # the latest versions: their nested fields batch too
        connection = connection_from_array_slice(
            nodes,
            {"first": limit},
            slice_start=offset,
            array_length=page.count,
            connection_type=functools.partial(connection_adapter, ServiceConnection),
            edge_type=ServiceConnection.Edge,
            page_info_type=page_info_adapter,
        )
        connection._total = page.count
        connection.facets = page.facets
        return connection

    @staticmethod
    @requires(key_scope("read"))
    def resolve_service(root: Any, info: graphene.ResolveInfo, id: str) -> Any:
        pk = node_pk(id, "ServiceNode", "Service")
        try:
            return discovery.get_visible_service(pk, viewer(info))
        except AppError:
            return None

    @staticmethod
    @requires(key_scope("read"))
    def resolve_model(root: Any, info: graphene.ResolveInfo, model_id: str) -> ServiceVersion | None:
        try:
            version = selectors.resolve_version(model_id)
            seen = viewer(info)
            discovery.get_visible_service(version.service_id, seen)
        except AppError:
            return None
        if version.status not in SERVABLE and not seen.manages(version.service):
            return None
        return version

    @staticmethod
    @requires(key_scope("read"))
    def resolve_service_status(
        root: Any, info: graphene.ResolveInfo, service_id: str, version: str | None = None
    ) -> ServiceStatusType:
        seen = viewer(info)
        service = discovery.get_visible_service(node_pk(service_id, "ServiceNode", "Service"), seen)
        if not seen.manages(service):
            raise AuthorizationError("Only the publisher's members and platform staff see publishing status.")
        found = discovery.get_version(service, version)
        return ServiceStatusType(service=service, version=found, validation_runs=list(runs_of(found)))
