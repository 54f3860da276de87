"""Views of the consumption REST API: thin adapters over the key services, the usage summaries and quota status."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.permissions import BasePermission, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer

from apps.catalog import selectors as catalog_selectors
from apps.catalog.models import CatalogModel
from apps.catalog.services.offers import unlink_offer
from apps.consumption import offers, selectors, services, usage
from apps.consumption.api import serializers
from apps.consumption.api.filters import UsageRecordFilter
from apps.consumption.api.pagination import KeyPagination, UsageCursorPagination
from apps.consumption.authentication import HasAdminScope, HasReadScope, HasScope, api_key_of
from apps.consumption.models import ApiKey, ApiKeyStatus, Scope, TenantRouting, UsageRecord
from apps.tenancy import quotas
from apps.tenancy.api.schema import tenant_header_parameter
from apps.tenancy.context import require_tenant
from apps.tenancy.models import Tenant
from apps.tenancy.permissions import IsTenantAdmin, IsTenantMember, TenantHeaderCheckMixin
from llm_infra_django.drf.schema import ErrorResponses
from llm_infra_django.drf.validation import ValidatedInputMixin
from llm_infra_django.errors import NotFoundError, ValidationError

errors = ErrorResponses(
    {
        400: "Invalid input: `error.details.fields` names each offending field or query parameter.",
        401: "Not authenticated, or the API key is unknown, expired or revoked.",
        402: "The tenant's API key quota is exhausted.",
        403: "The caller's role, its API key's scopes or its X-Tenant header do not allow this.",
        404: "Nothing of the caller's tenant has this id (other tenants' objects are never revealed).",
        409: "Conflicts with the key's state (already revoked, already rotated).",
    }
)

TENANT_HEADER_PARAMETER = tenant_header_parameter(
    "Session callers in several tenants: the slug of the tenant to act for (members only). API keys "
    "always act for their own tenant."
)
AS_PARAMETER = OpenApiParameter(
    "as",
    OpenApiTypes.STR,
    enum=list(serializers.PERSPECTIVES),
    description="`consumer` (default): what your tenant used. `provider`: what others used of the services your "
    "tenant publishes.",
)

KEY_EXAMPLE: dict[str, Any] = {
    "id": "0b7f2c1e-8a43-4f51-9a0e-3c2d1b0a9f87",
    "name": "backend",
    "display": "mk_4Fq…Zx9k",
    "prefix": "mk_4Fq9",
    "last4": "Zx9k",
    "status": "active",
    "scopes": ["consume", "read"],
    "allowed_models": ["acme/echo"],
    "rpm_limit": 600,
    "tpm_limit": None,
    "max_parallel": 8,
    "budget_day_usd": "25",
    "budget_month_usd": None,
    "expires_at": None,
    "revoked_at": None,
    "last_used_at": "2026-03-31T09:12:44Z",
    "created_at": "2026-03-01T10:00:00Z",
    "created_by": "alice",
    "rotated_from": None,
    "rotated_to": None,
}
SECRET_EXAMPLE = "mk_4Fq9Lr2bV7mXk1pQ8sT3wY6zA0cE5gH9jN2uR4Zx9k"
SUMMARY_EXAMPLE: dict[str, Any] = {
    "tenant": "globex",
    "as": "consumer",
    "days": 2,
    "first_day": "2026-03-30",
    "last_day": "2026-03-31",
    "totals": {
        "requests": 3,
        "errors": 1,
        "error_rate": 0.333333,
        "prompt_tokens": 30,
        "completion_tokens": 12,
        "total_tokens": 42,
        "cost": "0.000054",
        "avg_latency_ms": 180.5,
        "p95_latency_ms": 500.0,
    },
    "per_day": [
        {
            "day": "2026-03-30",
            "requests": 0,
            "errors": 0,
            "error_rate": 0.0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "total_tokens": 0,
            "cost": "0",
            "avg_latency_ms": None,
            "p95_latency_ms": None,
        },
        {
            "day": "2026-03-31",
            "requests": 3,
            "errors": 1,
            "error_rate": 0.333333,
            "prompt_tokens": 30,
            "completion_tokens": 12,
            "total_tokens": 42,
            "cost": "0.000054",
            "avg_latency_ms": 180.5,
            "p95_latency_ms": 500.0,
        },
    ],
    "per_service": [
        {
            "service": "acme/echo",
            "requests": 3,
            "errors": 1,
            "error_rate": 0.333333,
            "prompt_tokens": 30,
            "completion_tokens": 12,
            "total_tokens": 42,
            "cost": "0.000054",
            "avg_latency_ms": 180.5,
            "p95_latency_ms": 500.0,
        },
    ],
}


def parse_as(request: Request) -> bool:
    """Whether the caller asks for the provider view (`?as=provider`)."""
    value = request.query_params.get("as", "consumer")
    if value not in serializers.PERSPECTIVES:
        raise ValidationError(fields={"as": [f"One of: {', '.join(serializers.PERSPECTIVES)}."]})
    return value == "provider"


class ConsumptionViewSet(TenantHeaderCheckMixin, ValidatedInputMixin, viewsets.GenericViewSet):
    """Base of the consumption views: the caller's tenant (from its key, X-Tenant or single membership)."""

    metadata_class = None
    permission_classes: list[type[BasePermission]] = [HasReadScope, IsTenantMember]

    def get_tenant(self) -> Tenant:
        return require_tenant(self.request)

    def output(self, instance: Any, serializer_class: type[BaseSerializer], **kwargs: Any) -> Any:
        return serializer_class(instance, context=self.get_serializer_context(), **kwargs).data


# --- API keys ------------------------------------------------------------------------------------------------


class ApiKeyViewSet(ConsumptionViewSet):
    """The tenant's API keys: metadata only; the secret appears once, in the create and rotate responses."""

    serializer_class = serializers.ApiKeySerializer
    pagination_class = KeyPagination
    permission_classes = [HasAdminScope, IsTenantAdmin]

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        return selectors.list_api_keys(self.get_tenant(), status=self.request.query_params.get("status"))

    def get_key(self, pk: UUID) -> ApiKey:
        """A key of the caller's tenant; any other id (another tenant's key included) is a 404."""
        key = ApiKey.objects.filter(tenant=self.get_tenant(), pk=pk).select_related("created_by", "rotated_to").first()
        if key is None:
            raise NotFoundError("API key", str(pk))
        return key

    def created(self, key: ApiKey, secret: str, serializer_class: type[BaseSerializer], **extra: Any) -> Response:
        for name, value in {"secret": secret, **extra}.items():
            setattr(key, name, value)
        response = Response(self.output(key, serializer_class), status=status.HTTP_201_CREATED)
        response["Cache-Control"] = "no-store"
        return response

    @extend_schema(
        tags=["api keys"],
        summary="List the tenant's API keys",
        description="Tenant admins (or a key with the `admin` scope): key metadata, newest first. Keys are shown as "
        "prefix … last 4; secrets and their hashes never appear.",
        parameters=[
            TENANT_HEADER_PARAMETER,
            OpenApiParameter("status", OpenApiTypes.STR, enum=list(ApiKeyStatus.CHOICES)),
        ],
        responses={
            200: OpenApiResponse(
                serializers.ApiKeySerializer(many=True),
                examples=[OpenApiExample("A key", value=[KEY_EXAMPLE], response_only=True)],
            ),
            **errors(400, 401, 403),
        },
    )
    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(self.output(page, serializers.ApiKeySerializer, many=True))

    @extend_schema(
        tags=["api keys"],
        summary="Create an API key",
        description="Tenant admins. Answers the key **with its secret — the only time it is shown**; only a keyed "
        "hash is stored. Counts against the tenant's `api_keys` quota (402 when exhausted under BLOCK).",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.ApiKeyCreateSerializer,
        examples=[
            OpenApiExample(
                "A consume key with limits",
                value={
                    "name": "backend",
                    "scopes": ["consume", "read"],
                    "allowed_models": ["acme/echo"],
                    "rpm_limit": 600,
                    "max_parallel": 8,
                    "budget_day_usd": "25",
                },
                request_only=True,
            )
        ],
        responses={
            201: OpenApiResponse(
                serializers.ApiKeyCreatedSerializer,
                examples=[
                    OpenApiExample("Created", value={**KEY_EXAMPLE, "secret": SECRET_EXAMPLE}, response_only=True)
                ],
            ),
            **errors(400, 401, 402, 403, 409),
        },
    )
    def create(self, request: Request) -> Response:
        data = self.validated(serializers.ApiKeyCreateSerializer, request.data)
        key, secret = services.create_api_key(tenant=self.get_tenant(), actor=request.user, **data)
        return self.created(key, secret, serializers.ApiKeyCreatedSerializer)

    @extend_schema(
        tags=["api keys"],
        summary="Show an API key",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={
            200: OpenApiResponse(
                serializers.ApiKeySerializer,
                examples=[OpenApiExample("A key", value=KEY_EXAMPLE, response_only=True)],
            ),
            **errors(401, 403, 404),
        },
    )
    def retrieve(self, request: Request, pk: UUID) -> Response:
        return Response(self.output(self.get_key(pk), serializers.ApiKeySerializer))

    @extend_schema(
        tags=["api keys"],
        summary="Rotate an API key",
        description="Tenant admins. Creates a successor with the same settings and a new secret (**shown in this "
        "response only**); the old secret keeps working for `grace_hours` (default 24), then expires.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.ApiKeyRotateSerializer,
        examples=[OpenApiExample("One hour of grace", value={"grace_hours": 1}, request_only=True)],
        responses={
            201: OpenApiResponse(
                serializers.ApiKeyRotatedSerializer,
                examples=[
                    OpenApiExample(
                        "Rotated",
                        value={
                            **KEY_EXAMPLE,
                            "secret": SECRET_EXAMPLE,
                            "rotated_from": KEY_EXAMPLE["id"],
                            "previous_key": {"id": KEY_EXAMPLE["id"], "expires_at": "2026-04-01T10:00:00Z"},
                        },
                        response_only=True,
                    )
                ],
            ),
            **errors(400, 401, 403, 404, 409),
        },
    )
    def rotate(self, request: Request, pk: UUID) -> Response:
        key = self.get_key(pk)
        data = self.validated(serializers.ApiKeyRotateSerializer, request.data or {})
        new, secret = services.rotate_api_key(key=key, actor=request.user, grace_hours=data.get("grace_hours"))
        old = ApiKey.objects.get(pk=key.pk)
        return self.created(
            new, secret, serializers.ApiKeyRotatedSerializer, previous_key={"id": old.pk, "expires_at": old.expires_at}
        )

    @extend_schema(
        tags=["api keys"],
        summary="Revoke an API key",
        description="Tenant admins. Takes effect at once on every worker (the proxy and this API check a shared "
        "revocation flag); 409 when already revoked.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=None,
        responses={200: serializers.ApiKeySerializer, **errors(401, 403, 404, 409)},
    )
    def revoke(self, request: Request, pk: UUID) -> Response:
        key = services.revoke_api_key(key=self.get_key(pk), actor=request.user)
        return Response(self.output(key, serializers.ApiKeySerializer))


# --- Usage ---------------------------------------------------------------------------------------------------


class UsageViewSet(ConsumptionViewSet):
    """The usage ledger of the caller's tenant (or, as a provider, of its services) and summaries from rollups."""

    filter_backends = [DjangoFilterBackend]
    filterset_class = UsageRecordFilter
    pagination_class = UsageCursorPagination
    serializer_class = serializers.UsageRecordSerializer

    def get_queryset(self) -> QuerySet[UsageRecord]:
        if getattr(self, "swagger_fake_view", False):
            return UsageRecord.objects.none()
        return usage.list_usage_records(self.get_tenant(), as_provider=parse_as(self.request))

    @extend_schema(
        tags=["usage"],
        summary="List usage records",
        description="Tenant members (or a key with `read`): one row per request that reached an upstream, failures "
        "included, newest first, cursor-paginated (`next`/`previous` links; `limit` up to 100). With "
        "`as=provider`: requests to the services your tenant publishes, naming the consumer tenant instead of "
        "its key.",
        parameters=[TENANT_HEADER_PARAMETER, AS_PARAMETER],
        responses={200: serializers.UsageRecordSerializer(many=True), **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        as_provider = parse_as(request)
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        serializer_class = (
            serializers.ProviderUsageRecordSerializer if as_provider else serializers.UsageRecordSerializer
        )
        return self.get_paginated_response(self.output(page, serializer_class, many=True))

    @extend_schema(
        tags=["usage"],
        summary="Usage summary over N days",
        description="Tenant members (or a key with `read`): requests, errors and error rate, tokens, cost, average "
        "and p95 latency — in total, per UTC day and per service — over the last `days` days (default 30, at "
        "most 366). Computed from the daily rollups only, never from raw records. With `as=provider`: usage of "
        "your services by others, with your revenue (the services' sharing policy's provider share, 100 % "
        "without a policy).",
        filters=False,
        parameters=[
            TENANT_HEADER_PARAMETER,
            AS_PARAMETER,
            OpenApiParameter("days", OpenApiTypes.INT, description="1-366, default 30."),
            OpenApiParameter("key", OpenApiTypes.UUID, description="Only this API key of your tenant."),
            OpenApiParameter("model", OpenApiTypes.STR, description="Only this model id (`publisher/service`)."),
        ],
        responses={
            200: OpenApiResponse(
                serializers.UsageSummarySerializer,
                examples=[OpenApiExample("Two days", value=SUMMARY_EXAMPLE, response_only=True)],
            ),
            **errors(400, 401, 403),
        },
    )
    def summary(self, request: Request) -> Response:
        as_provider = parse_as(request)
        query = self.validated(serializers.SummaryQuerySerializer, request.query_params)
        data = usage.summarize_usage(
            self.get_tenant(),
            days=query["days"],
            as_provider=as_provider,
            api_key_id=query.get("key"),
            model_id=query.get("model"),
        )
        return Response(self.output(data, serializers.UsageSummarySerializer))


# --- Quota ---------------------------------------------------------------------------------------------------


class QuotaViewSet(ConsumptionViewSet):
    """Quota status of the caller's tenant, and of the calling key."""

    serializer_class = serializers.QuotaReportSerializer

    @extend_schema(
        tags=["usage"],
        summary="Quota status",
        description="Tenant members (or a key with `read`): every quota of the tenant (limit, period, action, "
        "usage, remaining, reset time); when called with an API key, also that key's rate limits and its spend "
        "against its daily and monthly budgets.",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.QuotaReportSerializer, **errors(401, 403)},
    )
    def retrieve(self, request: Request) -> Response:
        tenant = self.get_tenant()
        key = api_key_of(request)
        data = {
            "tenant": tenant.slug,
            "timezone": tenant.timezone,
            "quotas": quotas.quota_status(tenant),
            "key": selectors.key_quota(key) if key is not None else None,
        }
        return Response(self.output(data, serializers.QuotaReportSerializer))


# --- Routing ---------------------------------------------------------------------------------------------------


class RoutingViewSet(ConsumptionViewSet):
    """The tenant's routing preferences: read by its members, replaced by its admins."""

    serializer_class = serializers.RoutingSerializer

    def get_permissions(self) -> list[BasePermission]:
        if self.request.method == "PUT":
            return [HasAdminScope(), IsTenantAdmin()]
        return super().get_permissions()

    def _current(self) -> dict[str, Any]:
        settings = TenantRouting.objects.filter(tenant=self.get_tenant()).first()
        return {
            "routing": settings.routing if settings else {},
            "updated_at": settings.updated_at if settings else None,
        }

    @extend_schema(
        tags=["routing"],
        summary="The tenant's routing preferences",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.RoutingSerializer, **errors(401, 403)},
    )
    def retrieve(self, request: Request) -> Response:
        return Response(self.output(self._current(), serializers.RoutingSerializer))

    @extend_schema(
        tags=["routing"],
        summary="Replace the tenant's routing preferences",
        description="Tenant admins. Unknown fields and bad values are a 400 naming them (`routing.<field>`). Every "
        "worker applies the new preferences within `KEY_CACHE_SECONDS`.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.RoutingSerializer,
        examples=[
            OpenApiExample(
                "EU only, no more than $2 per million prompt tokens",
                value={"routing": {"data_residency": ["FR", "DE"], "max_price": {"prompt": 2}}},
                request_only=True,
            )
        ],
        responses={200: serializers.RoutingSerializer, **errors(400, 401, 403)},
    )
    def update(self, request: Request) -> Response:
        data = self.validated(serializers.RoutingSerializer, request.data)
        services.set_tenant_routing(tenant=self.get_tenant(), actor=request.user, routing=data["routing"])
        return Response(self.output(self._current(), serializers.RoutingSerializer))


# --- Offers of catalog models --------------------------------------------------------------------------------

offer_errors = ErrorResponses(
    {
        400: "Invalid input: `error.details.fields` names the field (`service_version`, `model_version`), e.g. a "
        "model closed to offers from your tenant or a service version that is not yours.",
        401: "Not authenticated (writes need a logged-in user or an API key with `publish`).",
        403: "The caller is not an admin of the provider tenant (nor, to unlink, of the model's owner), or names in "
        "X-Tenant a tenant it does not belong to.",
        404: "No model visible to the caller has this handle, or the model has no offer with this id.",
        409: "The provider tenant is suspended.",
    }
)
MODEL_HANDLE = OpenApiParameter(
    "slug",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The model's handle: `<owner-slug>--<model-slug>`, e.g. `acme--support-llama`.",
)
LINK_ID = OpenApiParameter("link_id", OpenApiTypes.UUID, OpenApiParameter.PATH, description="The offer's `link_id`.")
OFFER_EXAMPLE: dict[str, Any] = {
    "link_id": "5d1c2b3a-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "id": "globex/llama-host",
    "offer": "globex/llama-host@1.0.0",
    "model": "acme/support-llama",
    "model_version": "1.2.0",
    "provider": "globex",
    "service_version_id": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    "status": "active",
    "prices": {
        "model": "per_token",
        "input_per_mtok": "0.5",
        "output_per_mtok": "1.5",
        "cached_input_per_mtok": None,
        "per_request": None,
    },
    "context_length": 8192,
    "data_residency": ["DE", "FR"],
    "compliance_level": "public",
    "parameters": ["max_tokens", "temperature"],
    "health": {
        "healthy": True,
        "breaker": "closed",
        "requests": 1250,
        "availability": 99.92,
        "error_rate": 0.0008,
        "p50_ms": 310.0,
        "p95_ms": 890.0,
        "throughput_tps": 74.5,
    },
}


class OfferPagination(KeyPagination):
    """Limit/offset pages of a model's offers (50 by default, at most 100)."""


class ModelOfferViewSet(TenantHeaderCheckMixin, ValidatedInputMixin, viewsets.GenericViewSet):
    """The offers of a catalog model: reads open as the catalog's (what the caller may see of the model), writes by
    admins of the provider (offer, unlink) or of the model's owner (unlink)."""

    metadata_class = None
    permission_classes = [HasScope.of(read=Scope.READ, write=Scope.PUBLISH), IsAuthenticatedOrReadOnly]
    pagination_class = OfferPagination
    serializer_class = serializers.OfferSerializer

    def get_model(self, slug: str) -> CatalogModel:
        return catalog_selectors.get_model(catalog_selectors.viewer_of_request(self.request), slug)

    def output(self, instance: Any, **kwargs: Any) -> Any:
        return serializers.OfferSerializer(instance, context=self.get_serializer_context(), **kwargs).data

    @extend_schema(
        tags=["models"],
        summary="List a model's offers",
        description="Every provider's service version serving a version of the model, greatest model version "
        "first: prices, context length, data residency, compliance level, declared parameters and live health "
        "(circuit breaker, recent availability, error rate, p50/p95 latency, throughput). Open as catalog reads "
        "(anonymous callers see public models); offers that cannot be called (service version not active, model "
        "version not ready) are shown only to the model's owner and to their provider.",
        parameters=[MODEL_HANDLE, TENANT_HEADER_PARAMETER],
        responses={
            200: OpenApiResponse(
                serializers.OfferSerializer(many=True),
                examples=[OpenApiExample("An offer", value=[OFFER_EXAMPLE], response_only=True)],
            ),
            **offer_errors(401, 403, 404),
        },
    )
    def list(self, request: Request, slug: str) -> Response:
        model = self.get_model(slug)
        viewer = catalog_selectors.viewer_of_request(request)
        found = offers.list_offers([model], tenant=viewer.tenant, everything=viewer.everything)[model.pk]
        page = self.paginate_queryset(found) or []
        return self.get_paginated_response(self.output(offers.with_health(page), many=True))

    @extend_schema(
        tags=["models"],
        summary="Offer a service version for a model",
        description="Admins of the provider tenant (or a key with `publish`): declare that one of your service "
        "versions serves the model (`model_version`, default its latest ready version). The model's owner always "
        "may; another tenant when the model accepts open offers (`open_offers`) and its sharing lets the tenant use "
        "it. Idempotent: offering the same pair again answers the existing offer.",
        parameters=[MODEL_HANDLE, TENANT_HEADER_PARAMETER],
        request=serializers.OfferCreateSerializer,
        examples=[
            OpenApiExample(
                "Offer a version",
                value={"service_version": OFFER_EXAMPLE["service_version_id"], "model_version": "1.2.0"},
                request_only=True,
            )
        ],
        responses={
            201: OpenApiResponse(
                serializers.OfferSerializer,
                examples=[OpenApiExample("Offered", value=OFFER_EXAMPLE, response_only=True)],
            ),
            **offer_errors(400, 401, 403, 404, 409),
        },
    )
    def create(self, request: Request, slug: str) -> Response:
        model = self.get_model(slug)
        data = self.validated(serializers.OfferCreateSerializer, request.data)
        link = offers.offer_service_version(
            model=model,
            provider=require_tenant(request),
            actor=request.user,
            service_version_id=data["service_version"],
            version=data.get("model_version"),
        )
        return Response(self.output(offers.get_offer(link)), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["models"],
        summary="Unlink an offer",
        description="Admins of the model's owner or of the offer's provider: the service version no longer serves "
        "the model (routing stops choosing it at once).",
        parameters=[MODEL_HANDLE, LINK_ID, TENANT_HEADER_PARAMETER],
        request=None,
        responses={204: None, **offer_errors(401, 403, 404)},
    )
    def destroy(self, request: Request, slug: str, link_id: UUID) -> Response:
        link = catalog_selectors.get_offer_link(self.get_model(slug), link_id)
        unlink_offer(link=link, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
