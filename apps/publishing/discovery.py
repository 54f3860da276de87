"""Discovery of published services: who sees what, filters, full-text search, sorting, pagination and facets."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DecimalField,
    Exists,
    Expression,
    F,
    FloatField,
    Func,
    OrderBy,
    OuterRef,
    Q,
    QuerySet,
    TextField,
    Value,
    When,
)
from django.db.models.functions import Lower
from django.utils import timezone

from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import PricingModel, Service, ServiceVersion, Status
from apps.publishing.selectors import latest_active_filter, latest_any_filter
from apps.tenancy.models import Grant, GrantStatus, Membership, SharingPolicy, Tenant, Visibility
from apps.tenancy.services import is_platform_staff
from llm_infra_django.errors import NotFoundError

RESOURCE_TYPE = "service"
SORTS = ("relevance", "newest", "name", "price", "popularity", "rating")
FACETS = ("category", "pricing_model", "compliance_level")
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
# Fields a discovery row never needs: large (OpenAPI) or internal (indexes) or secret.
LIST_DEFERRED = ("openapi_document", "search_document", "tags_index", "residency_index", "upstream_secret_encrypted")
SEARCH_CONFIG = "english"

# --- Popularity: the consumption app registers how to count usage ------------------------------------------

PopularityExpression = Callable[[], Expression]
_popularity: PopularityExpression | None = None


def register_popularity(expression: PopularityExpression | None) -> None:
    """Let the app owning the usage ledger say how popular a version's service is.

    `expression()` returns an expression evaluated on each `ServiceVersion` row (higher = more popular), e.g. a
    `Subquery` counting the service's usage records or summing its daily rollups. Until one is registered (the
    consumption app registers it in its `ready()`), `sort=popularity` orders by publication date, newest first.
    """
    global _popularity
    _popularity = expression


# --- Who is asking -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """The caller of a discovery read: the tenant it consumes as, the tenants it owns rows of, and staff-ness."""

    consumer: Tenant | None
    own_tenant_ids: frozenset[Any] = frozenset()
    staff: bool = False

    def manages(self, service: Service) -> bool:
        """Platform staff and members of the publisher see everything about a service (all versions, URL)."""
        return self.staff or service.publisher_id in self.own_tenant_ids


def viewer_of(consumer: Tenant | None, user: Any, *, own_tenant_ids: Iterable[Any] | None = None) -> Viewer:
    """A viewer for `user` consuming as `consumer`. Own tenants default to every tenant the user belongs to (one
    query); a caller authenticated by a tenant's API key passes `own_tenant_ids=[key.tenant_id]` instead."""
    if own_tenant_ids is None:
        own: set[Any] = set()
        if getattr(user, "is_authenticated", False):
            own = set(Membership.objects.filter(user=user).values_list("tenant_id", flat=True))
        own_tenant_ids = own
    own_ids = frozenset(own_tenant_ids) | ({consumer.pk} if consumer is not None else frozenset())
    return Viewer(consumer=consumer, own_tenant_ids=own_ids, staff=is_platform_staff(user))


def hiding_policies(viewer: Viewer) -> QuerySet[SharingPolicy]:
    """Service sharing policies that hide their service from the viewer.

    No policy: visible. `public`/`marketplace`: visible, except to tenants on the block list. `tenant`: visible to
    tenants on the allow list or holding an active grant. `private`: visible only with an active grant. Without a
    consumer tenant only public and marketplace services are visible. A tenant's own services are never hidden.
    """
    if viewer.staff:
        return SharingPolicy.objects.none()
    policies = SharingPolicy.objects.filter(resource_type=RESOURCE_TYPE).exclude(owner_id__in=viewer.own_tenant_ids)
    restricted = Q(visibility__in=[Visibility.PRIVATE, Visibility.TENANT])
    if viewer.consumer is None:
        return policies.filter(restricted)
    consumer_id = viewer.consumer.pk
    granted = Grant.objects.filter(policy=OuterRef("pk"), consumer_id=consumer_id, status=GrantStatus.ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now())
    )
    allowed = SharingPolicy.allowed_tenants.through.objects.filter(
        sharingpolicy_id=OuterRef("pk"), tenant_id=consumer_id
    )
    blocked = SharingPolicy.blocked_tenants.through.objects.filter(
        sharingpolicy_id=OuterRef("pk"), tenant_id=consumer_id
    )
    listed = Q(visibility=Visibility.TENANT) & Q(Exists(allowed))
    return policies.filter(Q(Exists(blocked)) | (restricted & ~Q(Exists(granted)) & ~listed))


def hidden_service_ids(viewer: Viewer) -> list[uuid.UUID]:
    """Ids of the services a sharing policy hides from the viewer (one query; see `hiding_policies`)."""
    ids = []
    for resource_id in hiding_policies(viewer).values_list("resource_id", flat=True):
        try:
            ids.append(uuid.UUID(resource_id))
        except ValueError:
            continue
    return ids


def _resource_ids(service_id: uuid.UUID) -> list[str]:
    """The spellings a policy's `resource_id` may have for a service (it is stored as the provider typed it)."""
    return sorted({str(service_id), service_id.hex, str(service_id).upper(), service_id.hex.upper()})


# --- Parameters and result -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DiscoveryParams:
    """Validated discovery parameters (the API's query string, already parsed)."""

    search: str = ""
    categories: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    pricing_models: tuple[str, ...] = ()
    max_price: Decimal | None = None
    min_availability: Decimal | None = None
    max_latency_ms: int | None = None
    compliance_levels: tuple[str, ...] = ()
    residency: tuple[str, ...] = ()
    publisher: str = ""
    statuses: tuple[str, ...] = ()
    sort: str = ""
    limit: int = DEFAULT_LIMIT
    offset: int = 0

    @classmethod
    def from_query(cls, query: Mapping[str, Any]) -> DiscoveryParams:
        """Parameters from validated query input (the discovery query serializer's `validated_data`)."""
        return cls(
            search=query.get("search", ""),
            categories=tuple(query.get("category", ())),
            tags=tuple(query.get("tags", ())),
            pricing_models=tuple(query.get("pricing_model", ())),
            max_price=query.get("max_price"),
            min_availability=query.get("min_availability"),
            max_latency_ms=query.get("max_latency_ms"),
            compliance_levels=tuple(query.get("compliance_level", ())),
            residency=tuple(query.get("residency", ())),
            publisher=query.get("publisher", ""),
            statuses=tuple(query.get("status", ())),
            sort=query.get("sort", ""),
            limit=query.get("limit", DEFAULT_LIMIT),
            offset=query.get("offset", 0),
        )


@dataclass
class DiscoveryPage:
    """One page of discovery rows (one version per service, with `service.publisher` loaded) and the facets."""

    count: int
    limit: int
    offset: int
    results: list[ServiceVersion]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)


# --- Full-text search --------------------------------------------------------------------------------------


class _TsVector(Func):
    """`to_tsvector('english'::regconfig, search_document)`: the exact expression of the GIN index (migration
    0002), without the COALESCE Django's `SearchVector` adds (which would stop PostgreSQL from using the index)."""

    template = f"to_tsvector('{SEARCH_CONFIG}'::regconfig, %(expressions)s)"
    output_field = TextField()


class _WebSearchQuery(Func):
    template = f"websearch_to_tsquery('{SEARCH_CONFIG}'::regconfig, %(expressions)s)"
    output_field = TextField()


class _TsMatch(Func):
    arg_joiner = " @@ "
    template = "(%(expressions)s)"
    output_field = BooleanField()


class _TsRank(Func):
    function = "ts_rank"
    output_field = FloatField()


def _search(queryset: QuerySet[ServiceVersion], text: str) -> tuple[QuerySet[ServiceVersion], bool]:
    """Filter by free text; returns the queryset and whether it carries a `search_rank` annotation.

    PostgreSQL: `websearch_to_tsquery` syntax ("quoted phrases", `or`, `-excluded`) over the indexed document,
    ranked by `ts_rank`. Other databases: every whitespace-separated term must appear (case-insensitive)."""
    if connections[queryset.db].vendor == "postgresql":
        vector = _TsVector(F("search_document"))
        query = _WebSearchQuery(Value(text))
        queryset = queryset.filter(_TsMatch(vector, query)).annotate(search_rank=_TsRank(vector, query))
        return queryset, True
    for term in text.split():
        queryset = queryset.filter(search_document__icontains=term)
    return queryset, False


# --- Filters and rows ----------------------------------------------------------------------------------------


def effective_price() -> Case:
    """The price a consumer compares: per 1M input tokens (per_token), per request (per_request), 0 (free);
    unknown (NULL) for subscriptions."""
    return Case(
        When(pricing_model=PricingModel.PER_TOKEN, then=F("price_input_per_mtok")),
        When(pricing_model=PricingModel.PER_REQUEST, then=F("price_per_request")),
        When(pricing_model=PricingModel.FREE, then=Value(Decimal(0))),
        default=Value(None),
        output_field=DecimalField(max_digits=20, decimal_places=10),
    )


def _greater_versions(counted: Q) -> Exists:
    """Whether the row's service has a greater version matching `counted` (SemVer order on the stored numbers)."""
    greater = ServiceVersion.objects.filter(service=OuterRef("service")).filter(
        Q(major__gt=OuterRef("major"))
        | Q(major=OuterRef("major"), minor__gt=OuterRef("minor"))
        | Q(major=OuterRef("major"), minor=OuterRef("minor"), patch__gt=OuterRef("patch"))
    )
    return Exists(greater.filter(counted))


def visible_rows(viewer: Viewer) -> QuerySet[ServiceVersion]:
    """One version per service the viewer may see: the latest *active* one for consumers; the latest one in any
    state for services of the viewer's own tenants; the latest one of every service for platform staff.

    The "no greater version" test is one NOT EXISTS at the top of the WHERE clause (a greater version counts when
    it is active, or when the service is the viewer's own), so PostgreSQL plans it as an anti-join; written as
    `consumer rows OR own rows` it became a correlated sub-plan per row, costed high enough to trigger JIT
    compilation, and was several times slower on 10 000 services."""
    queryset = ServiceVersion.objects.all()
    if viewer.staff:
        return queryset.filter(~latest_any_filter())
    if viewer.own_tenant_ids:
        own = Q(service__publisher_id__in=viewer.own_tenant_ids)
        queryset = queryset.filter(Q(status=Status.ACTIVE) | own).filter(
            ~_greater_versions(Q(status=Status.ACTIVE) | own)
        )
    else:
        queryset = queryset.filter(status=Status.ACTIVE).filter(~latest_active_filter())
    hidden = hidden_service_ids(viewer)
    if hidden:
        queryset = queryset.exclude(service_id__in=hidden)
    return queryset


def _any_contains(field_name: str, values: Iterable[str]) -> Q:
    condition = Q()
    for value in values:
        condition |= Q(**{f"{field_name}__contains": f",{value},"})
    return condition


def apply_filters(queryset: QuerySet[ServiceVersion], params: DiscoveryParams) -> QuerySet[ServiceVersion]:
    """Every filter but free text. Lists match any of their values."""
    if params.categories:
        queryset = queryset.filter(category__in=params.categories)
    if params.tags:
        queryset = queryset.filter(_any_contains("tags_index", (t.lower() for t in params.tags)))
    if params.pricing_models:
        queryset = queryset.filter(pricing_model__in=params.pricing_models)
    if params.max_price is not None:
        queryset = queryset.alias(effective_price=effective_price()).filter(effective_price__lte=params.max_price)
    if params.min_availability is not None:
        queryset = queryset.filter(sla_availability__gte=params.min_availability)
    if params.max_latency_ms is not None:
        queryset = queryset.filter(sla_max_latency_ms__lte=params.max_latency_ms)
    if params.compliance_levels:
        queryset = queryset.filter(compliance_level__in=params.compliance_levels)
    if params.residency:
        queryset = queryset.filter(_any_contains("residency_index", (c.upper() for c in params.residency)))
    if params.publisher:
        queryset = queryset.filter(service__publisher__slug=params.publisher)
    if params.statuses:
        queryset = queryset.filter(status__in=params.statuses)
    return queryset


def _newest() -> list[OrderBy]:
    return [F("published_at").desc(nulls_last=True), F("created_at").desc()]


def ordering(sort: str, *, ranked: bool) -> tuple[dict[str, Any], list[Any]]:
    """Annotations and `order_by` terms of a sort; ties broken by the version id so pages never overlap.

    `relevance` (the default when searching on PostgreSQL) is `ts_rank`; elsewhere it falls back to `newest`.
    `rating`: no ratings exist yet, so services rank by their promised availability (SLA %), then by date.
    `popularity`: the registered usage expression (see `register_popularity`), else `newest`."""
    sort = sort or ("relevance" if ranked else "newest")
    annotations: dict[str, Any] = {}
    if sort == "relevance" and ranked:
        terms: list[Any] = [F("search_rank").desc(), *_newest()]
    elif sort == "name":
        terms = [Lower("name").asc(), "name"]
    elif sort == "price":
        annotations["sort_price"] = effective_price()
        terms = [F("sort_price").asc(nulls_last=True), *_newest()]
    elif sort == "popularity" and _popularity is not None:
        annotations["popularity"] = _popularity()
        terms = [F("popularity").desc(nulls_last=True), *_newest()]
    elif sort == "rating":
        terms = [F("sla_availability").desc(), *_newest()]
    else:
        terms = _newest()
    return annotations, [*terms, "pk"]


def facet_counts(queryset: QuerySet[ServiceVersion]) -> tuple[int, dict[str, dict[str, int]]]:
    """The total and the category / pricing model / compliance level counts of a filtered set, in one query."""
    facets: dict[str, dict[str, int]] = {name: {} for name in FACETS}
    total = 0
    for row in queryset.order_by().values(*FACETS).annotate(n=Count("pk")):
        total += row["n"]
        for name in FACETS:
            facets[name][row[name]] = facets[name].get(row[name], 0) + row["n"]
    return total, {name: dict(sorted(counts.items())) for name, counts in facets.items()}


def list_services(
    consumer: Tenant | None,
    user: Any,
    params: DiscoveryParams,
    *,
    own_tenant_ids: Iterable[Any] | None = None,
) -> DiscoveryPage:
    """One page of services visible to `user` consuming as `consumer`, with facet counts over the filtered set.

    A constant number of SQL queries whatever the page size: memberships (unless `own_tenant_ids` is given), the
    sharing policies hiding services (consumers only), the facets (which give the total too) and the page."""
    viewer = viewer_of(consumer, user, own_tenant_ids=own_tenant_ids)
    queryset = apply_filters(visible_rows(viewer), params)
    ranked = False
    if params.search.strip():
        queryset, ranked = _search(queryset, params.search.strip())
    total, facets = facet_counts(queryset)
    limit = max(1, min(params.limit, MAX_LIMIT))
    results: list[ServiceVersion] = []
    if total and params.offset < total:
        annotations, terms = ordering(params.sort, ranked=ranked)
        page = (
            queryset.annotate(**annotations)
            .select_related("service__publisher")
            .defer(*LIST_DEFERRED)
            .order_by(*terms)[params.offset : params.offset + limit]
        )
        results = list(page)
    return DiscoveryPage(count=total, limit=limit, offset=params.offset, results=results, facets=facets)


# --- One service ---------------------------------------------------------------------------------------------


def get_visible_service(service_id: Any, viewer: Viewer) -> Service:
    """The service if the viewer may see it, else 404 (whether it exists is not revealed).

    Managers (staff, the publisher's members) see it in every state; consumers when a version can be served and
    no sharing policy hides it."""
    service = Service.objects.select_related("publisher").filter(pk=service_id).first()
    if service is None or (not viewer.manages(service) and not _consumer_sees(service, viewer)):
        raise NotFoundError("Service", service_id)
    return service


def _consumer_sees(service: Service, viewer: Viewer) -> bool:
    if not service.versions.filter(status__in=SERVABLE).exists():
        return False
    return not hiding_policies(viewer).filter(resource_id__in=_resource_ids(service.pk)).exists()


def list_versions(service: Service, viewer: Viewer) -> QuerySet[ServiceVersion]:
    """Versions of a visible service, newest first: all for managers, servable ones (active, deprecated) for
    consumers."""
    queryset = service.versions.select_related("service__publisher").order_by("-major", "-minor", "-patch")
    if not viewer.manages(service):
        queryset = queryset.filter(status__in=SERVABLE)
    return queryset


def get_version(service: Service, version: str | None) -> ServiceVersion:
    """A version of the service by its number, or (None) the latest one that is not retired."""
    queryset = service.versions.select_related("service__publisher")
    if version:
        found = queryset.filter(version=version).first()
    else:
        found = queryset.exclude(status=Status.RETIRED).order_by("-major", "-minor", "-patch").first()
    if found is None:
        raise NotFoundError("Version", f"{service}@{version}" if version else f"{service} (no live version)")
    return found
