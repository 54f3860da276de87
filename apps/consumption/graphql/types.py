"""GraphQL types of the consumption app: key metadata (never a hash or secret), usage records, summaries, quota and
SLA status, and the permission checks of the REST views (HasReadScope + IsTenantMember, HasAdminScope +
IsTenantAdmin) as `requires` checks."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import Q, QuerySet
from graphene import relay
from graphene_django import DjangoObjectType

from apps.catalog import selectors as catalog_selectors
from apps.catalog.models import CatalogModel
from apps.consumption import offers
from apps.consumption.api.serializers import PERSPECTIVES
from apps.consumption.models import ApiKey, Scope, UsageRecord, key_status
from apps.consumption.offers import Offer
from apps.tenancy.context import require_tenant, resolve_tenant
from apps.tenancy.graphql.types import QuotaType
from apps.tenancy.models import Role, Tenant
from apps.tenancy.permissions import has_role
from llm_infra_django.errors import AppError, AuthorizationError, ValidationError
from llm_infra_django.graphql import Check, CountedConnection, authenticated, key_scope, load_related
from llm_infra_django.graphql import Decimal as GqlDecimal


def tenant_role(minimum: str) -> Check:
    """A check: the caller holds at least `minimum` in the tenant it acts for (its key's tenant, the X-Tenant header
    or its single membership), as the REST views' `IsTenant*` permissions."""

    def check(info: graphene.ResolveInfo) -> None:
        request = info.context
        if not has_role(request, require_tenant(request), minimum):
            raise AuthorizationError("You do not have the role this needs in the tenant.")

    check.__doc__ = f"role {minimum}"
    return check


# The REST views' permission classes: usage, quota and SLA reads; key management.
READ_USAGE: tuple[Check, ...] = (key_scope(Scope.READ), tenant_role(Role.VIEWER))
MANAGE_KEYS: tuple[Check, ...] = (key_scope(Scope.ADMIN), tenant_role(Role.ADMIN))


def permitted_tenant(info: graphene.ResolveInfo, checks: tuple[Check, ...]) -> Tenant | None:
    """The caller's tenant when it passes `checks`, else None (node lookups then find nothing)."""
    try:
        authenticated(info)
        for check in checks:
            check(info)
    except AppError:
        return None
    return resolve_tenant(info.context)


def as_provider(value: str | None) -> bool:
    """The `as` argument (`consumer` by default, or `provider`), validated as REST's `?as=`."""
    value = value or "consumer"
    if value not in PERSPECTIVES:
        raise ValidationError(fields={"as": [f"One of: {', '.join(PERSPECTIVES)}."]})
    return value == "provider"


def perspective_argument() -> graphene.String:
    return graphene.String(
        name="as",
        description="`consumer` (default): what your tenant used. `provider`: what others used of the services "
        "your tenant publishes.",
    )


# --- API keys ------------------------------------------------------------------------------------------------


class ApiKeyNode(DjangoObjectType):
    """An API key's metadata, for the admins of its tenant. The secret is never stored, its hash never shown."""

    display = graphene.String(required=True, description="What identifies the key: prefix … last 4 characters.")
    status = graphene.String(required=True, description="`active`, `expired` or `revoked`.")
    scopes = graphene.List(graphene.NonNull(graphene.String), required=True)
    allowed_models = graphene.List(
        graphene.NonNull(graphene.String), required=True, description="Model ids; empty = every model allowed."
    )
    created_by = graphene.String(description="Username of the creator, if any.")
    routing = graphene.JSONString(required=True, description="Routing preferences of the key's calls (JSON).")
    rotated_from = graphene.Field(lambda: ApiKeyNode, description="The key this one replaced.")
    rotated_to = graphene.Field(lambda: ApiKeyNode, description="The key that replaced this one.")

    class Meta:
        model = ApiKey
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "name",
            "prefix",
            "last4",
            "rpm_limit",
            "tpm_limit",
            "max_parallel",
            "budget_day_usd",
            "budget_month_usd",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        tenant = permitted_tenant(info, MANAGE_KEYS)
        if tenant is None:
            return queryset.none()
        return queryset.filter(tenant=tenant).select_related("created_by", "rotated_to", "rotated_from")

    @staticmethod
    def resolve_display(root: ApiKey, info: graphene.ResolveInfo) -> str:
        return root.display

    @staticmethod
    def resolve_status(root: ApiKey, info: graphene.ResolveInfo) -> str:
        return key_status(root)

    @staticmethod
    def resolve_scopes(root: ApiKey, info: graphene.ResolveInfo) -> list[str]:
        return list(root.scopes or [])

    @staticmethod
    def resolve_allowed_models(root: ApiKey, info: graphene.ResolveInfo) -> list[str]:
        return list(root.allowed_models or [])

    @staticmethod
    def resolve_routing(root: ApiKey, info: graphene.ResolveInfo) -> dict[str, Any]:
        return dict(root.routing or {})

    @staticmethod
    def resolve_created_by(root: ApiKey, info: graphene.ResolveInfo) -> str | None:
        return root.created_by.get_username() if root.created_by_id and root.created_by else None

    @staticmethod
    def resolve_rotated_from(root: ApiKey, info: graphene.ResolveInfo) -> ApiKey | None:
        return root.rotated_from if root.rotated_from_id else None

    @staticmethod
    def resolve_rotated_to(root: ApiKey, info: graphene.ResolveInfo) -> ApiKey | None:
        return getattr(root, "rotated_to", None)  # reverse one-to-one: absent → DoesNotExist (an AttributeError)


class ApiKeyConnection(CountedConnection):
    class Meta:
        node = ApiKeyNode


# --- Usage records -------------------------------------------------------------------------------------------


def _keys_of(info: graphene.ResolveInfo) -> Any:
    """`load_related` loader: each record's key, when the caller may see it (admins of the key's tenant)."""

    def load(records: list[UsageRecord]) -> dict[Any, ApiKey | None]:
        keys = ApiKeyNode.get_queryset(ApiKey.objects.filter(pk__in={r.api_key_id for r in records}), info).in_bulk()
        return {record.pk: keys.get(record.api_key_id) for record in records}

    return load


class UsageRecordNode(DjangoObjectType):
    """One request in the ledger. Its node id names its request id (never a sequential number). Providers see the
    consumer tenant of requests to their services, not the consumer's key."""

    total_tokens = graphene.Int(required=True)
    consumer = graphene.String(required=True, description="Slug of the tenant that made the request.")
    api_key_id = graphene.UUID(description="The key that made the request (only for your tenant's own requests).")
    api_key = graphene.Field(ApiKeyNode, description="That key's metadata (admins of your tenant only).")
    service_version_id = graphene.UUID(required=True)

    class Meta:
        model = UsageRecord
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "request_id",
            "model_id",
            "endpoint",
            "prompt_tokens",
            "completion_tokens",
            "reported_prompt_tokens",
            "reported_completion_tokens",
            "usage_disputed",
            "cost",
            "latency_ms",
            "ttft_ms",
            "status_code",
            "error_code",
            "estimated",
            "stream",
            "started_at",
            "finished_at",
            "provider",
            "attempt_of",
            "attempts",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        tenant = permitted_tenant(info, READ_USAGE)
        if tenant is None:
            return queryset.none()
        return queryset.filter(Q(tenant=tenant) | Q(publisher=tenant)).select_related("tenant")

    @classmethod
    def get_node(cls, info: graphene.ResolveInfo, id: str) -> UsageRecord | None:
        return cls.get_queryset(UsageRecord.objects.filter(request_id=id), info).first()

    def resolve_id(self, info: graphene.ResolveInfo) -> str:
        return self.request_id

    @staticmethod
    def resolve_total_tokens(root: UsageRecord, info: graphene.ResolveInfo) -> int:
        return root.prompt_tokens + root.completion_tokens

    @staticmethod
    def resolve_consumer(root: UsageRecord, info: graphene.ResolveInfo) -> str:
        return root.tenant.slug

    @staticmethod
    def resolve_api_key_id(root: UsageRecord, info: graphene.ResolveInfo) -> Any:
        return root.api_key_id if _own_request(root, info) else None

    @staticmethod
    def resolve_api_key(root: UsageRecord, info: graphene.ResolveInfo) -> ApiKey | None:
        if not _own_request(root, info):
            return None
        return load_related(info, root, "consumption.usage.api_key", _keys_of(info))

    @staticmethod
    def resolve_service_version_id(root: UsageRecord, info: graphene.ResolveInfo) -> Any:
        return root.service_version_id


def _own_request(record: UsageRecord, info: graphene.ResolveInfo) -> bool:
    tenant = resolve_tenant(info.context)
    return tenant is not None and record.tenant_id == tenant.pk


class UsageRecordConnection(CountedConnection):
    class Meta:
        node = UsageRecordNode


# --- Summaries, quota, SLA -----------------------------------------------------------------------------------


class UsageFigures(graphene.ObjectType):
    requests = graphene.Int(required=True)
    errors = graphene.Int(required=True, description="Requests answered with a status ≥ 400.")
    error_rate = graphene.Float(required=True, description="errors / requests (0 to 1).")
    disputed = graphene.Int(
        required=True,
        description="Requests whose provider claimed more usage than they admitted (billed at the bound).",
    )
    prompt_tokens = graphene.Int(required=True)
    completion_tokens = graphene.Int(required=True)
    total_tokens = graphene.Int(required=True)
    cost = GqlDecimal(required=True, description="USD paid by consumers.")
    avg_latency_ms = graphene.Float()
    p95_latency_ms = graphene.Float(description="Upper bound of the latency histogram bucket holding the p95.")
    revenue = GqlDecimal(description="Providers only: the provider's share of `cost`.")


class UsageDay(UsageFigures):
    day = graphene.Date(required=True, description="UTC day.")


class UsageByService(UsageFigures):
    service = graphene.String(required=True, description="Model id `publisher/service`.")
    provider_share_percent = GqlDecimal(description="Providers only.")


class UsageSummary(graphene.ObjectType):
    """Usage over the last N days from the daily rollups: in total, per UTC day and per service."""

    tenant = graphene.String(required=True)
    as_ = graphene.String(name="as", required=True)
    days = graphene.Int(required=True)
    first_day = graphene.Date(required=True)
    last_day = graphene.Date(required=True)
    totals = graphene.Field(UsageFigures, required=True)
    per_day = graphene.List(graphene.NonNull(UsageDay), required=True)
    per_service = graphene.List(graphene.NonNull(UsageByService), required=True)

    @staticmethod
    def resolve_as_(root: dict[str, Any], info: graphene.ResolveInfo) -> str:
        return root["as"]


class KeyBudget(graphene.ObjectType):
    limit = GqlDecimal(description="USD; null when the key has no such budget.")
    spent = GqlDecimal(required=True, description="USD spent in the period (from the ledger).")
    remaining = GqlDecimal()
    period_start = graphene.Date(required=True, description="UTC.")


class KeyQuota(graphene.ObjectType):
    id = graphene.UUID(required=True)
    display = graphene.String(required=True)
    rpm_limit = graphene.Int()
    tpm_limit = graphene.Int()
    max_parallel = graphene.Int()
    budget_day = graphene.Field(KeyBudget, required=True)
    budget_month = graphene.Field(KeyBudget, required=True)


class QuotaReport(graphene.ObjectType):
    tenant = graphene.String(required=True)
    timezone = graphene.String(required=True, description="Quota periods start at calendar boundaries here.")
    quotas = graphene.List(graphene.NonNull(QuotaType), required=True)
    key = graphene.Field(KeyQuota, description="The calling key's limits and spend (null for session callers).")

    @staticmethod
    def resolve_quotas(root: dict[str, Any], info: graphene.ResolveInfo) -> list[QuotaType]:
        return [QuotaType(**row) for row in root["quotas"]]


class ServiceSlaStatus(graphene.ObjectType):
    """A service version's measured SLA over the last hour (from the last periodic check; `no_data` until it has
    seen traffic)."""

    service_version_id = graphene.UUID(required=True)
    model_id = graphene.String(required=True)
    version = graphene.String(required=True)
    state = graphene.String(required=True, description="`ok`, `warning`, `critical` or `no_data`.")
    requests = graphene.Int(required=True)
    server_errors = graphene.Int()
    error_rate = graphene.Float()
    availability = graphene.Float(description="Percent of requests not failed upstream.")
    p50_ms = graphene.Float()
    p95_ms = graphene.Float()
    p99_ms = graphene.Float()
    max_latency_ms = graphene.Int(description="The version's SLA latency.")
    availability_target = graphene.Float()
    latency_state = graphene.String()
    error_rate_state = graphene.String()
    disputed = graphene.Int(description="Requests whose provider reported more usage than they admitted.")
    dispute_state = graphene.String(description="`warning` with any disputed usage, `critical` above 1 % of requests.")
    window_start = graphene.DateTime()
    window_end = graphene.DateTime()


# --- Offers of catalog models (the `offers` field of the catalog's model type, added by apps.gateway.links) -------


class OfferPrices(graphene.ObjectType):
    model = graphene.String(required=True, description="per_token, per_request, ...")
    input_per_mtok = GqlDecimal()
    output_per_mtok = GqlDecimal()
    cached_input_per_mtok = GqlDecimal()
    per_request = GqlDecimal()

    @staticmethod
    def resolve_model(root: Offer, info: graphene.ResolveInfo) -> str:
        return root.pricing_model

    @staticmethod
    def resolve_input_per_mtok(root: Offer, info: graphene.ResolveInfo) -> Any:
        return root.price_input_per_mtok

    @staticmethod
    def resolve_output_per_mtok(root: Offer, info: graphene.ResolveInfo) -> Any:
        return root.price_output_per_mtok

    @staticmethod
    def resolve_cached_input_per_mtok(root: Offer, info: graphene.ResolveInfo) -> Any:
        return root.price_cached_input_per_mtok

    @staticmethod
    def resolve_per_request(root: Offer, info: graphene.ResolveInfo) -> Any:
        return root.price_per_request


class OfferHealth(graphene.ObjectType):
    """An offer's live health, as routing sees it."""

    healthy = graphene.Boolean(required=True, description="Breaker not open, availability above the minimum.")
    breaker = graphene.String(required=True, description="closed, half_open or open.")
    requests = graphene.Int(required=True, description="Requests in the recent SLA window.")
    availability = graphene.Float(description="% of recent requests without a server error.")
    error_rate = graphene.Float()
    p50_ms = graphene.Float()
    p95_ms = graphene.Float()
    throughput_tps = graphene.Float(description="Output tokens per second.")


class CatalogModelOffer(graphene.ObjectType):
    """One offer of a catalog model: a provider's service version serving one of its versions (as
    `/api/v1/models/<slug>/offers/` lists them)."""

    link_id = graphene.ID(required=True, description="Id of the offer (`unlinkOffer` takes it).")
    id = graphene.String(required=True, description="`<publisher>/<service>`.")
    offer = graphene.String(required=True, description="`<publisher>/<service>@<version>`.")
    model = graphene.String(required=True, description="`<owner>/<model-slug>`.")
    model_version = graphene.String(required=True)
    provider = graphene.String(required=True, description="The publisher tenant's slug.")
    service_version_id = graphene.ID(required=True)
    status = graphene.String(required=True, description="The service version's status (routed when active).")
    prices = graphene.Field(OfferPrices, required=True)
    context_length = graphene.Int(required=True)
    data_residency = graphene.List(graphene.NonNull(graphene.String), required=True)
    compliance_level = graphene.String(required=True)
    parameters = graphene.List(graphene.NonNull(graphene.String), required=True)
    health = graphene.Field(OfferHealth)

    @staticmethod
    def resolve_prices(root: Offer, info: graphene.ResolveInfo) -> Offer:
        return root

    @staticmethod
    def resolve_health(root: Offer, info: graphene.ResolveInfo) -> Any:
        return OfferHealth(**root.health) if root.health is not None else None


def offers_of(info: graphene.ResolveInfo, model: CatalogModel) -> list[Offer]:
    """The offers of a catalog model the caller may see, with their health: loaded at once for every model of the
    page (one SQL query, one health read for all)."""

    def load(models: list[CatalogModel]) -> dict[Any, list[Offer]]:
        seen = catalog_selectors.viewer_of_request(info.context)
        found = offers.list_offers(models, tenant=seen.tenant, everything=seen.everything)
        healthy = iter(offers.with_health([offer for listed in found.values() for offer in listed]))
        return {pk: [next(healthy) for _ in listed] for pk, listed in found.items()}

    return load_related(info, model, "consumption.offers", load, default=list)
