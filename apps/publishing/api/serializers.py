"""Serializers of the publishing API: strict nested input flattened to the service fields, and read shapes.

Input nests the definition (`endpoint.auth.secret`, `pricing.input_per_mtok`, ...) and each nested serializer is
declared with `source="*"`, so DRF merges its values into one flat dict named like `services.VERSION_FIELDS` (plus
`upstream_secret`). Output never carries the upstream secret: it is write-only and not a field of any read shape.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from django.core.validators import RegexValidator, URLValidator
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from apps.publishing.discovery import DEFAULT_LIMIT, MAX_LIMIT, SORTS
from apps.publishing.hooks import measured_sla
from apps.publishing.models import (
    AuthKind,
    Category,
    ComplianceLevel,
    PricingModel,
    Protocol,
    ServiceVersion,
    Status,
    SupportLevel,
)
from llm_infra_django.drf.fields import ListFilterField
from llm_infra_django.jsonvalues import unstorable

MAX_INT32 = 2_147_483_647


# --- Strict input fields -------------------------------------------------------------------------------------


class StrictCharField(serializers.CharField):
    """A JSON string only (DRF's CharField would turn numbers into strings)."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer only (not a string, a float or a boolean)."""

    default_error_messages = {"invalid": "A whole number is required."}

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """`true` or `false` only (DRF's BooleanField also takes "yes", 1, "on", ...)."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictDecimalField(serializers.DecimalField):
    """A decimal written as a JSON string ("0.50", preferred: exact) or number; never a boolean, list or object."""

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, bool) or not isinstance(data, (str, int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


class PlainDecimalField(serializers.DecimalField):
    """A decimal written as a string without trailing zeros ("0.5", "12"), or null."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_digits", None)
        kwargs.setdefault("decimal_places", None)
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> str | None:
        if value is None:
            return None
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        return format(number.normalize(), "f")


def price_field(source: str, help_text: str) -> StrictDecimalField:
    return StrictDecimalField(
        source=source, max_digits=20, decimal_places=10, required=False, allow_null=True, help_text=help_text
    )


class StrictSerializer(serializers.Serializer):
    """Refuses unknown (and read-only) keys, naming each, instead of silently ignoring them."""

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            writable = {name for name, f in self.fields.items() if not f.read_only}
            unknown = {str(name): ["Unknown field."] for name in data if name not in writable}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- The service definition (input) -------------------------------------------------------------------------

NO_COMMA = RegexValidator(r"^[^,]+$", "Cannot contain a comma.")
VERSION_PART = re.compile(r"\d+")


def storable_json(value: Any) -> None:
    """Refuse what PostgreSQL cannot store in a JSON document (NUL characters, numbers such as 1e400 that read as
    infinity): a 500 otherwise."""
    problems = unstorable(value, "")
    if problems:
        raise serializers.ValidationError(sorted(set(problems.values())))


def version_parts_in_range(value: str) -> None:
    """Each number of a version fits the database's integer columns (beyond that the database would fail)."""
    if any(int(part) > MAX_INT32 for part in VERSION_PART.findall(value)):
        raise serializers.ValidationError(f"Each number of the version must be at most {MAX_INT32}.")


CURRENCY = RegexValidator(r"^[A-Z]{3}$", "A three-letter ISO-4217 code, e.g. USD.")
HTTP_URL = URLValidator(schemes=["http", "https"], message="An http(s) URL.")


class CapabilitySerializer(StrictSerializer):
    """A capability of the service: a name, what it does, its parameters."""

    name = StrictCharField(max_length=100)
    description = StrictCharField(max_length=1000, required=False, allow_blank=True)
    parameters = serializers.DictField(
        required=False, validators=[storable_json], help_text="JSON object describing the parameters."
    )


class AuthInputSerializer(StrictSerializer):
    """How the marketplace authenticates to the upstream; the secret is write-only and stored encrypted."""

    kind = serializers.ChoiceField(
        source="auth_kind", choices=AuthKind.choices, required=False, help_text="How the marketplace authenticates."
    )
    secret = StrictCharField(
        source="upstream_secret",
        write_only=True,
        required=False,
        allow_blank=True,
        max_length=4096,
        trim_whitespace=False,
        help_text="API key or bearer token for the upstream. Stored encrypted; never returned by any API.",
    )


class EndpointInputSerializer(StrictSerializer):
    """Where and how the marketplace calls the service."""

    url = StrictCharField(
        source="endpoint_url",
        required=False,
        allow_blank=True,
        max_length=500,
        validators=[HTTP_URL],
        help_text="Base URL of the OpenAI-compatible server (e.g. https://llm.example.com/v1); empty for echo.",
    )
    protocol = serializers.ChoiceField(choices=Protocol.choices, required=False)
    model = StrictCharField(
        source="upstream_model", required=False, allow_blank=True, max_length=200, help_text="Upstream model name."
    )
    auth = AuthInputSerializer(source="*", required=False)


class PricingInputSerializer(StrictSerializer):
    """Prices as decimal strings (USD unless `currency` says otherwise)."""

    model = serializers.ChoiceField(source="pricing_model", choices=PricingModel.choices)
    input_per_mtok = price_field("price_input_per_mtok", "Price of 1M input tokens.")
    output_per_mtok = price_field("price_output_per_mtok", "Price of 1M output tokens.")
    cached_input_per_mtok = price_field("price_cached_input_per_mtok", "Price of 1M cached input tokens.")
    per_request = price_field("price_per_request", "Price of one request.")
    currency = StrictCharField(required=False, validators=[CURRENCY])


class SlaInputSerializer(StrictSerializer):
    """The service level the publisher promises."""

    availability = StrictDecimalField(
        source="sla_availability", max_digits=6, decimal_places=3, min_value=0, max_value=100, required=False
    )
    max_latency_ms = StrictIntegerField(source="sla_max_latency_ms", min_value=1, max_value=MAX_INT32, required=False)
    timeout_ms = StrictIntegerField(source="sla_timeout_ms", min_value=1, max_value=MAX_INT32, required=False)
    support_level = serializers.ChoiceField(choices=SupportLevel.choices, required=False)


class ComplianceInputSerializer(StrictSerializer):
    """Compliance level, certifications and where data is processed."""

    level = serializers.ChoiceField(source="compliance_level", choices=ComplianceLevel.choices, required=False)
    certifications = serializers.ListField(child=StrictCharField(max_length=100), max_length=50, required=False)
    data_residency = serializers.ListField(
        child=StrictCharField(max_length=8),
        max_length=80,
        required=False,
        help_text="ISO-3166 alpha-2 country codes where data is processed.",
    )
    gdpr = StrictBooleanField(source="gdpr_compliant", required=False)
    hipaa = StrictBooleanField(source="hipaa_compliant", required=False)


class ServiceDefinitionSerializer(StrictSerializer):
    """A version's definition. Its validated data is flat: `version` plus `services.VERSION_FIELDS` names."""

    version = StrictCharField(
        max_length=32,
        validators=[version_parts_in_range],
        help_text="SemVer MAJOR.MINOR.PATCH, greater than every earlier one.",
    )
    name = StrictCharField(max_length=200)
    description = StrictCharField(min_length=10, max_length=5000)
    category = serializers.ChoiceField(choices=Category.choices)
    tags = serializers.ListField(
        child=StrictCharField(max_length=50, validators=[NO_COMMA]), max_length=20, required=False
    )
    capabilities = CapabilitySerializer(many=True, required=False, max_length=50)
    endpoint = EndpointInputSerializer(source="*")
    pricing = PricingInputSerializer(source="*")
    sla = SlaInputSerializer(source="*", required=False)
    compliance = ComplianceInputSerializer(source="*", required=False)
    context_length = StrictIntegerField(min_value=1, max_value=MAX_INT32, required=False)
    modalities = serializers.ListField(child=StrictCharField(max_length=30), max_length=10, required=False)
    openapi = serializers.DictField(
        source="openapi_document",
        required=False,
        allow_null=True,
        validators=[storable_json],
        help_text="OpenAPI 3 document of the service.",
    )
    serves = serializers.ListField(
        child=StrictCharField(max_length=200),
        max_length=20,
        required=False,
        help_text="Catalog models this version offers: `<owner>/<model-slug>` (its latest ready version) or "
        "`<owner>/<model-slug>@<version>`. Each model must exist and accept offers from your tenant (its owner, or "
        "`open_offers`); linked when the version becomes active.",
    )


class ServicePublishSerializer(ServiceDefinitionSerializer):
    """A new service: its slug and the definition of its first version."""

    slug = StrictCharField(
        max_length=63, help_text="2-63 lower-case letters, digits and hyphens, unique per publisher."
    )


class DryRunSerializer(ServiceDefinitionSerializer):
    """A definition to validate without saving anything."""

    slug = StrictCharField(max_length=63, required=False, help_text="Accepted and ignored (same body as publish).")
    service = serializers.UUIDField(
        required=False, help_text="Validate as a new version of this service (checks that the version increases)."
    )


class VersionActionSerializer(StrictSerializer):
    """A lifecycle action on one version of the service."""

    version = StrictCharField(
        max_length=32, required=False, help_text="Version to act on; default: the latest version that is not retired."
    )


class StatusQuerySerializer(serializers.Serializer):
    """Query string of a service's publishing status."""

    version = serializers.CharField(
        max_length=32, required=False, allow_blank=True, help_text="Default: the latest version that is not retired."
    )


class VersionApproveSerializer(VersionActionSerializer):
    """Approve a version waiting for approval."""

    notes = StrictCharField(max_length=1000, required=False, allow_blank=True)


class VersionRejectSerializer(VersionActionSerializer):
    """Reject a version waiting for approval."""

    notes = StrictCharField(max_length=1000, help_text="Why the version is rejected (shown to the publisher).")


class VersionSuspendSerializer(VersionActionSerializer):
    """Suspend an active version."""

    reason = StrictCharField(max_length=500, help_text="Why the version is taken off the air.")


# --- Discovery query ---------------------------------------------------------------------------------------


class DiscoveryQuerySerializer(StrictSerializer):
    """Query string of the discovery list (unknown parameters are refused)."""

    search = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=200,
        help_text='Free text. PostgreSQL: web-search syntax ("phrase", or, -word), ranked; elsewhere all terms.',
    )
    category = ListFilterField(child=serializers.ChoiceField(choices=Category.choices), required=False, max_length=12)
    tags = ListFilterField(child=serializers.CharField(max_length=50), required=False, help_text="Any of.")
    pricing_model = ListFilterField(
        child=serializers.ChoiceField(choices=PricingModel.choices), required=False, max_length=4
    )
    max_price = serializers.DecimalField(
        max_digits=20,
        decimal_places=10,
        min_value=0,
        required=False,
        help_text="Per 1M input tokens for per_token services, per request for per_request ones; free ones match.",
    )
    min_availability = serializers.DecimalField(
        max_digits=6, decimal_places=3, min_value=0, max_value=100, required=False, help_text="SLA availability %."
    )
    max_latency_ms = serializers.IntegerField(min_value=0, max_value=MAX_INT32, required=False)
    compliance_level = ListFilterField(
        child=serializers.ChoiceField(choices=ComplianceLevel.choices), required=False, max_length=4
    )
    residency = ListFilterField(
        child=serializers.CharField(min_length=2, max_length=2),
        required=False,
        max_length=50,
        help_text="ISO-3166 alpha-2 codes; services keeping data in any of them.",
    )
    publisher = serializers.SlugField(max_length=63, required=False, help_text="Publisher tenant slug.")
    status = ListFilterField(
        child=serializers.ChoiceField(choices=Status.choices),
        required=False,
        max_length=9,
        help_text="Consumers only ever see active rows; useful for publishers and staff (e.g. pending_approval).",
    )
    sort = serializers.ChoiceField(
        choices=SORTS,
        required=False,
        help_text="Default: relevance when searching (PostgreSQL), else newest. rating = SLA availability (no ratings "
        "exist yet); popularity = usage records once the consumption app registers them, else newest.",
    )
    limit = serializers.IntegerField(
        min_value=1, required=False, default=DEFAULT_LIMIT, help_text=f"Page size, at most {MAX_LIMIT}."
    )
    offset = serializers.IntegerField(min_value=0, max_value=MAX_INT32, required=False, default=0)


# --- Read shapes -------------------------------------------------------------------------------------------


class PublisherSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    slug = serializers.CharField(read_only=True)
    name = serializers.CharField(read_only=True)


class AuthSerializer(serializers.Serializer):
    kind = serializers.CharField(source="auth_kind", read_only=True)


class EndpointSerializer(serializers.Serializer):
    url = serializers.CharField(
        source="endpoint_url",
        read_only=True,
        allow_null=True,
        help_text="Shown to the publisher's members and platform staff only (null for consumers).",
    )
    protocol = serializers.CharField(read_only=True)
    model = serializers.CharField(source="upstream_model", read_only=True)
    auth = AuthSerializer(source="*", read_only=True)


class PricingSerializer(serializers.Serializer):
    model = serializers.CharField(source="pricing_model", read_only=True)
    input_per_mtok = PlainDecimalField(source="price_input_per_mtok", allow_null=True)
    output_per_mtok = PlainDecimalField(source="price_output_per_mtok", allow_null=True)
    cached_input_per_mtok = PlainDecimalField(source="price_cached_input_per_mtok", allow_null=True)
    per_request = PlainDecimalField(source="price_per_request", allow_null=True)
    currency = serializers.CharField(read_only=True)


class SlaSerializer(serializers.Serializer):
    availability = PlainDecimalField(source="sla_availability")
    max_latency_ms = serializers.IntegerField(source="sla_max_latency_ms", read_only=True)
    timeout_ms = serializers.IntegerField(source="sla_timeout_ms", read_only=True)
    support_level = serializers.CharField(read_only=True)
    measured = serializers.SerializerMethodField(
        help_text="Measured from real traffic: requests, error rate, availability and p50/p95/p99 latency "
        "(state no_data until the periodic SLA check has seen traffic)."
    )

    @extend_schema_field({"type": "object", "nullable": True, "additionalProperties": True})
    def get_measured(self, version: Any) -> dict[str, Any] | None:
        return measured_sla(version.pk)


class ComplianceSerializer(serializers.Serializer):
    level = serializers.CharField(source="compliance_level", read_only=True)
    certifications = serializers.ListField(child=serializers.CharField(), read_only=True)
    data_residency = serializers.ListField(child=serializers.CharField(), read_only=True)
    gdpr = serializers.BooleanField(source="gdpr_compliant", read_only=True)
    hipaa = serializers.BooleanField(source="hipaa_compliant", read_only=True)


class VersionContentSerializer(serializers.Serializer):
    """What a version offers. The endpoint URL is hidden from viewers who do not manage the service (context
    `viewer`, a `discovery.Viewer`)."""

    name = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    category = serializers.CharField(read_only=True)
    tags = serializers.ListField(child=serializers.CharField(), read_only=True)
    capabilities = CapabilitySerializer(many=True, read_only=True)
    endpoint = EndpointSerializer(source="*", read_only=True)
    pricing = PricingSerializer(source="*", read_only=True)
    sla = SlaSerializer(source="*", read_only=True)
    compliance = ComplianceSerializer(source="*", read_only=True)
    context_length = serializers.IntegerField(read_only=True)
    modalities = serializers.ListField(child=serializers.CharField(), read_only=True)

    def to_representation(self, instance: ServiceVersion) -> dict[str, Any]:
        data = super().to_representation(instance)
        viewer = self.context.get("viewer")
        if viewer is None or not viewer.manages(instance.service):
            data["endpoint"]["url"] = None
        return data


class ServiceRowSerializer(VersionContentSerializer):
    """A discovery row: a service with the version a viewer sees (latest active; own services: latest)."""

    id = serializers.UUIDField(source="service_id", read_only=True, help_text="Service id.")
    model_id = serializers.CharField(read_only=True, help_text="Model id for the proxy: `<publisher>/<service>`.")
    slug = serializers.CharField(source="service.slug", read_only=True)
    publisher = PublisherSerializer(source="service.publisher", read_only=True)
    version = serializers.CharField(read_only=True)
    version_id = serializers.UUIDField(source="id", read_only=True)
    status = serializers.CharField(read_only=True)
    published_at = serializers.DateTimeField(read_only=True, allow_null=True)
    deprecated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True)


class FacetsSerializer(serializers.Serializer):
    category = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    pricing_model = serializers.DictField(child=serializers.IntegerField(), read_only=True)
    compliance_level = serializers.DictField(child=serializers.IntegerField(), read_only=True)


@extend_schema_serializer(many=False)  # the page itself: not a list of pages (the view's action is `list`)
class DiscoveryPageSerializer(serializers.Serializer):
    count = serializers.IntegerField(read_only=True, help_text="Rows matching the filters.")
    limit = serializers.IntegerField(read_only=True)
    offset = serializers.IntegerField(read_only=True)
    next = serializers.URLField(read_only=True, allow_null=True)
    previous = serializers.URLField(read_only=True, allow_null=True)
    results = ServiceRowSerializer(many=True, read_only=True)
    facets = FacetsSerializer(read_only=True, help_text="Counts over the filtered set (all pages).")


class VersionSerializer(VersionContentSerializer):
    """One version in full (the OpenAPI document included)."""

    id = serializers.UUIDField(read_only=True)
    service_id = serializers.UUIDField(read_only=True)
    model_id = serializers.SerializerMethodField(help_text="Pinned model id: `<publisher>/<service>@<version>`.")
    version = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    openapi = serializers.JSONField(source="openapi_document", read_only=True, allow_null=True)
    serves = serializers.ListField(
        child=serializers.CharField(), read_only=True, help_text="Catalog models the definition declares it serves."
    )
    published_at = serializers.DateTimeField(read_only=True, allow_null=True)
    deprecated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    retire_at = serializers.DateTimeField(read_only=True, allow_null=True)
    suspension_reason = serializers.CharField(read_only=True)
    review_notes = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)

    def get_model_id(self, version: ServiceVersion) -> str:
        return f"{version.model_id}@{version.version}"


class ServiceIdentitySerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    slug = serializers.CharField(read_only=True)
    model_id = serializers.CharField(source="__str__", read_only=True, help_text="`<publisher>/<service>`.")
    publisher = PublisherSerializer(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)


class ServiceDetailSerializer(ServiceIdentitySerializer):
    versions = VersionSerializer(
        source="visible_versions",
        many=True,
        read_only=True,
        help_text="Newest first: every version for the publisher and staff, active and deprecated ones otherwise.",
    )


class RetireServiceResultSerializer(serializers.Serializer):
    retired_versions = serializers.IntegerField(read_only=True)
    service = ServiceDetailSerializer(read_only=True)


class ValidationIssueSerializer(serializers.Serializer):
    code = serializers.CharField(read_only=True, help_text="e.g. INVALID_COUNTRY_CODE, GDPR_REQUIRED.")
    field = serializers.CharField(read_only=True, help_text="Path in the definition, e.g. `endpoint.url`.")
    message = serializers.CharField(read_only=True)
    severity = serializers.CharField(read_only=True, help_text="error|warning|info; policy: low|medium|high|critical.")


class ValidationStepSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True)
    position = serializers.IntegerField(read_only=True)
    outcome = serializers.CharField(read_only=True)
    messages = ValidationIssueSerializer(many=True, read_only=True)
    duration_ms = serializers.FloatField(read_only=True)


class ValidationRunSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    outcome = serializers.CharField(read_only=True, help_text="running | passed | failed.")
    result_status = serializers.CharField(read_only=True, help_text="Status the run gave the version.")
    started_at = serializers.DateTimeField(read_only=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    steps = ValidationStepSerializer(source="steps.all", many=True, read_only=True)


class PublishResultSerializer(serializers.Serializer):
    service = ServiceIdentitySerializer(read_only=True)
    version = VersionSerializer(read_only=True)
    validation_run = ValidationRunSerializer(read_only=True)


class VersionStatusSerializer(serializers.Serializer):
    id = serializers.UUIDField(read_only=True)
    version = serializers.CharField(read_only=True)
    status = serializers.CharField(read_only=True)
    published_at = serializers.DateTimeField(read_only=True, allow_null=True)
    deprecated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    retire_at = serializers.DateTimeField(read_only=True, allow_null=True)
    suspension_reason = serializers.CharField(read_only=True)
    review_notes = serializers.CharField(read_only=True)


class ServiceStatusSerializer(serializers.Serializer):
    service = ServiceIdentitySerializer(read_only=True)
    version = VersionStatusSerializer(read_only=True)
    validation_runs = ValidationRunSerializer(many=True, read_only=True, help_text="Newest first.")


class DryRunStepSerializer(serializers.Serializer):
    name = serializers.CharField(read_only=True, help_text="schema | openapi | policy.")
    outcome = serializers.CharField(read_only=True, help_text="passed | failed.")
    messages = ValidationIssueSerializer(many=True, read_only=True)


class DryRunResultSerializer(serializers.Serializer):
    valid = serializers.BooleanField(read_only=True, help_text="True when no step failed.")
    steps = DryRunStepSerializer(many=True, read_only=True)
