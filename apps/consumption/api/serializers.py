"""Serializers of the consumption REST API: key metadata (never the hash; the secret only once), usage, quota."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.consumption.models import ApiKey, Scope, UsageRecord, key_status
from apps.tenancy.api.serializers import InputSerializer, PlainDecimalField, QuotaStatusSerializer

MAX_INT32 = 2_147_483_647
MAX_GRACE_HOURS = 24 * 30
PERSPECTIVES = ("consumer", "provider")


# --- API keys ------------------------------------------------------------------------------------------------


class ApiKeySerializer(serializers.ModelSerializer):
    """A key's metadata. The secret is never stored and its hash is never returned."""

    display = serializers.CharField(read_only=True, help_text="What identifies the key: prefix … last 4 characters.")
    status = serializers.SerializerMethodField()
    created_by = serializers.SerializerMethodField()
    rotated_to = serializers.SerializerMethodField()
    budget_day_usd = PlainDecimalField(allow_null=True)
    budget_month_usd = PlainDecimalField(allow_null=True)

    class Meta:
        model = ApiKey
        fields = [
            "id",
            "name",
            "display",
            "prefix",
            "last4",
            "status",
            "scopes",
            "allowed_models",
            "routing",
            "rpm_limit",
            "tpm_limit",
            "max_parallel",
            "budget_day_usd",
            "budget_month_usd",
            "expires_at",
            "revoked_at",
            "last_used_at",
            "created_at",
            "created_by",
            "rotated_from",
            "rotated_to",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(help_text="`active`, `expired` or `revoked`."))
    def get_status(self, key: ApiKey) -> str:
        return key_status(key)

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="Username of the creator, if any."))
    def get_created_by(self, key: ApiKey) -> str | None:
        return key.created_by.get_username() if key.created_by_id and key.created_by else None

    @extend_schema_field(serializers.UUIDField(allow_null=True, help_text="The key that replaced this one."))
    def get_rotated_to(self, key: ApiKey) -> str | None:
        successor = getattr(key, "rotated_to", None)
        return str(successor.pk) if successor is not None else None


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(
        read_only=True,
        help_text="The API key itself. Shown in this response only: store it now, it cannot be retrieved again.",
    )

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]
        read_only_fields = fields


class PreviousKeySerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True, help_text="The old secret works until then.")


class ApiKeyRotatedSerializer(ApiKeyCreatedSerializer):
    previous_key = PreviousKeySerializer(read_only=True)

    class Meta(ApiKeyCreatedSerializer.Meta):
        fields = [*ApiKeyCreatedSerializer.Meta.fields, "previous_key"]
        read_only_fields = fields


class ApiKeyCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=100)
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=Scope.choices),
        allow_empty=False,
        required=False,
        help_text="Default: consume only.",
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text="Model ids (`publisher/service`); empty = every model the tenant may use.",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    routing = serializers.JSONField(
        required=False,
        help_text="Routing preferences of the key's calls: the fields of a request's `provider` object (`order`, "
        "`only`, `ignore`, `allow_fallbacks`, `sort`, `max_price`, `require_parameters`, `data_residency`, "
        "`compliance`). They narrow the tenant's; a request narrows them further, never widens them.",
    )
    rpm_limit = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False, allow_null=True)
    tpm_limit = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False, allow_null=True)
    max_parallel = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False, allow_null=True)
    budget_day_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True, help_text="USD per UTC day; > 0."
    )
    budget_month_usd = serializers.DecimalField(
        max_digits=20, decimal_places=6, required=False, allow_null=True, help_text="USD per UTC month; > 0."
    )

    def validate_expires_at(self, value: Any) -> Any:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("The expiry must be in the future.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = {
            name: ["A positive number, or null for no limit."]
            for name in ("budget_day_usd", "budget_month_usd")
            if attrs.get(name) is not None and attrs[name] <= 0
        }
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class ApiKeyRotateSerializer(InputSerializer):
    grace_hours = serializers.FloatField(
        min_value=0,
        max_value=MAX_GRACE_HOURS,
        required=False,
        help_text="Hours the old secret keeps working (default: the ROTATION_GRACE_HOURS setting, 24).",
    )


# --- Usage ---------------------------------------------------------------------------------------------------


class UsageRecordSerializer(serializers.ModelSerializer):
    """One request in the ledger, as its consumer sees it."""

    api_key = serializers.UUIDField(source="api_key_id", read_only=True)
    service_version = serializers.UUIDField(source="service_version_id", read_only=True)
    total_tokens = serializers.SerializerMethodField()
    cost = PlainDecimalField()

    class Meta:
        model = UsageRecord
        fields = [
            "request_id",
            "api_key",
            "model_id",
            "service_version",
            "endpoint",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
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
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.INT)
    def get_total_tokens(self, record: UsageRecord) -> int:
        return record.prompt_tokens + record.completion_tokens


class ProviderUsageRecordSerializer(UsageRecordSerializer):
    """One request to a provider's service: the consumer tenant instead of its key."""

    consumer = serializers.SlugRelatedField(source="tenant", slug_field="slug", read_only=True)

    class Meta(UsageRecordSerializer.Meta):
        fields = ["consumer", *[f for f in UsageRecordSerializer.Meta.fields if f != "api_key"]]
        read_only_fields = fields


class UsageFiguresSerializer(serializers.Serializer):
    requests = serializers.IntegerField(read_only=True)
    errors = serializers.IntegerField(read_only=True, help_text="Requests answered with a status ≥ 400.")
    error_rate = serializers.FloatField(read_only=True, help_text="errors / requests (0 to 1).")
    disputed = serializers.IntegerField(
        read_only=True,
        help_text="Requests whose provider claimed more usage than they admitted (billed at the bound).",
    )
    prompt_tokens = serializers.IntegerField(read_only=True)
    completion_tokens = serializers.IntegerField(read_only=True)
    total_tokens = serializers.IntegerField(read_only=True)
    cost = PlainDecimalField(help_text="USD paid by consumers.")
    avg_latency_ms = serializers.FloatField(read_only=True, allow_null=True)
    p95_latency_ms = serializers.FloatField(
        read_only=True,
        allow_null=True,
        help_text="Upper bound of the latency histogram bucket holding the 95th percentile.",
    )
    # Writable only so that the schema lists it as optional (read-only fields are always "required" there); these
    # serializers only render.
    revenue = PlainDecimalField(
        read_only=False,
        required=False,
        help_text="Providers only: the provider's share of `cost` (its sharing policy's "
        "provider_share_percent, 100 % without a policy).",
    )


class UsageDaySerializer(UsageFiguresSerializer):
    day = serializers.DateField(read_only=True, help_text="UTC day.")


class UsageServiceSerializer(UsageFiguresSerializer):
    service = serializers.CharField(read_only=True, help_text="Model id `publisher/service`.")
    provider_share_percent = PlainDecimalField(read_only=False, required=False, help_text="Providers only.")


class UsageSummarySerializer(serializers.Serializer):
    tenant = serializers.SlugField(read_only=True)
    # "as" is a keyword: declared through the class namespace.
    vars()["as"] = serializers.ChoiceField(choices=PERSPECTIVES, read_only=True)
    days = serializers.IntegerField(read_only=True)
    first_day = serializers.DateField(read_only=True)
    last_day = serializers.DateField(read_only=True)
    totals = UsageFiguresSerializer(read_only=True)
    per_day = UsageDaySerializer(many=True, read_only=True)
    per_service = UsageServiceSerializer(many=True, read_only=True)


class SummaryQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=366, required=False, default=30)
    key = serializers.UUIDField(required=False)
    model = serializers.CharField(max_length=200, required=False)


# --- Quota ---------------------------------------------------------------------------------------------------


class BudgetSerializer(serializers.Serializer):
    limit = PlainDecimalField(allow_null=True, help_text="USD; null when the key has no such budget.")
    spent = PlainDecimalField(help_text="USD spent in the period (completed requests, from the ledger).")
    remaining = PlainDecimalField(allow_null=True)
    period_start = serializers.DateField(read_only=True, help_text="UTC.")


class KeyQuotaSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    display = serializers.CharField(read_only=True)
    rpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    tpm_limit = serializers.IntegerField(read_only=True, allow_null=True)
    max_parallel = serializers.IntegerField(read_only=True, allow_null=True)
    budget_day = BudgetSerializer(read_only=True)
    budget_month = BudgetSerializer(read_only=True)


class QuotaReportSerializer(serializers.Serializer):
    tenant = serializers.SlugField(read_only=True)
    timezone = serializers.CharField(read_only=True, help_text="Quota periods start at calendar boundaries here.")
    quotas = QuotaStatusSerializer(many=True, read_only=True)
    key = KeyQuotaSerializer(
        read_only=True, allow_null=True, help_text="The calling key's limits and spend (null for session callers)."
    )


class RoutingSerializer(serializers.Serializer):
    """A tenant's routing preferences (the fields of a request's `provider` object)."""

    routing = serializers.JSONField(
        help_text="`order`, `only`, `ignore`, `allow_fallbacks`, `sort`, `max_price`, `require_parameters`, "
        "`data_residency`, `compliance`: defaults and restrictions every call of the tenant's keys starts from."
    )
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)


# --- Offers of catalog models --------------------------------------------------------------------------------


class OfferPricesSerializer(serializers.Serializer):
    model = serializers.CharField(source="pricing_model", read_only=True, help_text="per_token, per_request, ...")
    input_per_mtok = PlainDecimalField(source="price_input_per_mtok", allow_null=True)
    output_per_mtok = PlainDecimalField(source="price_output_per_mtok", allow_null=True)
    cached_input_per_mtok = PlainDecimalField(source="price_cached_input_per_mtok", allow_null=True)
    per_request = PlainDecimalField(source="price_per_request", allow_null=True)


class OfferHealthSerializer(serializers.Serializer):
    healthy = serializers.BooleanField(
        read_only=True, help_text="Gets first-choice traffic: breaker not open, availability above the minimum."
    )
    breaker = serializers.CharField(read_only=True, help_text="The upstream's circuit: closed, half_open or open.")
    requests = serializers.IntegerField(read_only=True, help_text="Requests in the recent SLA window.")
    availability = serializers.FloatField(read_only=True, allow_null=True, help_text="% without a server error.")
    error_rate = serializers.FloatField(read_only=True, allow_null=True)
    p50_ms = serializers.FloatField(read_only=True, allow_null=True)
    p95_ms = serializers.FloatField(read_only=True, allow_null=True)
    throughput_tps = serializers.FloatField(read_only=True, allow_null=True, help_text="Output tokens per second.")


class OfferSerializer(serializers.Serializer):
    """One offer of a catalog model: a provider's service version serving one of the model's versions."""

    link_id = serializers.UUIDField(read_only=True, help_text="Id of the offer (unlink it with DELETE …/<link_id>/).")
    id = serializers.CharField(read_only=True, help_text="`<publisher>/<service>`.")
    offer = serializers.CharField(read_only=True, help_text="`<publisher>/<service>@<version>`, as answers name it.")
    model = serializers.CharField(read_only=True, help_text="`<owner>/<model-slug>`.")
    model_version = serializers.CharField(read_only=True)
    provider = serializers.CharField(read_only=True, help_text="The publisher tenant's slug.")
    service_version_id = serializers.UUIDField(read_only=True)
    status = serializers.CharField(read_only=True, help_text="The service version's status (routed when active).")
    prices = OfferPricesSerializer(source="*", read_only=True)
    context_length = serializers.IntegerField(read_only=True)
    data_residency = serializers.ListField(child=serializers.CharField(), read_only=True)
    compliance_level = serializers.CharField(read_only=True)
    parameters = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Request parameters the service declares."
    )
    health = OfferHealthSerializer(read_only=True)


class OfferCreateSerializer(InputSerializer):
    """Offer one of your tenant's service versions for this model."""

    service_version = serializers.UUIDField(help_text="A version of one of your services.")
    model_version = serializers.CharField(
        max_length=64, required=False, help_text="The model's version it serves; default: its latest ready one."
    )
