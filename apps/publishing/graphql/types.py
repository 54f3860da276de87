"""GraphQL types of the publishing app. Consumers never see an upstream credential or endpoint; what a caller sees
of a service follows the discovery selectors (the same rules as the REST API)."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import Prefetch, Q, QuerySet
from graphene import relay
from graphene.types.generic import GenericScalar
from graphene_django import DjangoObjectType

from apps.publishing import discovery
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import Service, ServiceVersion, ValidationRun, ValidationStep
from apps.tenancy.context import resolve_tenant
from apps.tenancy.models import Tenant
from llm_infra_django.graphql import CountedConnection, PagedConnectionField, load_related
from llm_infra_django.graphql import Decimal as GqlDecimal


def viewer(info: graphene.ResolveInfo) -> discovery.Viewer:
    """The caller as discovery sees it (once per request): the tenant it consumes as, the tenants it manages."""
    request = info.context
    cached = getattr(request, "_gql_publishing_viewer", None)
    if cached is None:
        key = getattr(request, "auth", None)
        own = [key.tenant_id] if key is not None else None
        cached = discovery.viewer_of(resolve_tenant(request), request.user, own_tenant_ids=own)
        request._gql_publishing_viewer = cached
    return cached


class PublisherType(graphene.ObjectType):
    """The tenant publishing a service, as every consumer may see it."""

    slug = graphene.String(required=True)
    name = graphene.String(required=True)
    trusted = graphene.Boolean(required=True, description="Its versions go live without staff approval.")

    @staticmethod
    def resolve_trusted(root: Tenant, info: graphene.ResolveInfo) -> bool:
        return bool(root.trusted_publisher)


class PricingType(graphene.ObjectType):
    model = graphene.String(required=True, description="per_token, per_request, subscription or free.")
    input_per_mtok = GqlDecimal(description="Price of 1M input tokens.")
    output_per_mtok = GqlDecimal(description="Price of 1M output tokens.")
    cached_input_per_mtok = GqlDecimal()
    per_request = GqlDecimal()
    currency = graphene.String(required=True)


class SlaType(graphene.ObjectType):
    availability = GqlDecimal(required=True, description="Promised availability, percent.")
    max_latency_ms = graphene.Int(required=True)
    timeout_ms = graphene.Int(required=True)
    support_level = graphene.String(required=True)


class ComplianceType(graphene.ObjectType):
    level = graphene.String(required=True)
    certifications = graphene.List(graphene.NonNull(graphene.String), required=True)
    data_residency = graphene.List(graphene.NonNull(graphene.String), required=True)
    gdpr_compliant = graphene.Boolean(required=True)
    hipaa_compliant = graphene.Boolean(required=True)


class ServiceVersionNode(DjangoObjectType):
    """One version of a service."""

    model_id = graphene.String(required=True, description="`<publisher>/<service>`, as the proxy takes it.")
    service_id = graphene.ID(required=True)
    tags = graphene.List(graphene.NonNull(graphene.String), required=True)
    capabilities = GenericScalar(required=True)
    modalities = graphene.List(graphene.NonNull(graphene.String), required=True)
    serves = graphene.List(
        graphene.NonNull(graphene.String),
        required=True,
        description="Catalog models the definition declares it serves (`<owner>/<model-slug>[@<version>]`).",
    )
    pricing = graphene.Field(PricingType, required=True)
    sla = graphene.Field(SlaType, required=True)
    compliance = graphene.Field(ComplianceType, required=True)
    endpoint_url = graphene.String(description="The upstream URL: the publisher's members and staff only.")

    class Meta:
        model = ServiceVersion
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "version",
            "name",
            "description",
            "category",
            "protocol",
            "context_length",
            "status",
            "published_at",
            "deprecated_at",
            "retire_at",
            "suspension_reason",
            "review_notes",
            "created_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        """Versions of services the caller may see: all of its own (and, for staff, all); servable ones of
        services discovery shows it."""
        seen = viewer(info)
        queryset = queryset.select_related("service__publisher")
        if seen.staff:
            return queryset
        visible = discovery.visible_rows(seen).values("service_id")
        return queryset.filter(service_id__in=visible).filter(
            Q(service__publisher_id__in=seen.own_tenant_ids) | Q(status__in=SERVABLE)
        )

    @staticmethod
    def resolve_model_id(root: ServiceVersion, info: graphene.ResolveInfo) -> str:
        return root.model_id

    @staticmethod
    def resolve_service_id(root: ServiceVersion, info: graphene.ResolveInfo) -> str:
        return str(root.service_id)

    @staticmethod
    def resolve_pricing(root: ServiceVersion, info: graphene.ResolveInfo) -> PricingType:
        return PricingType(
            model=root.pricing_model,
            input_per_mtok=root.price_input_per_mtok,
            output_per_mtok=root.price_output_per_mtok,
            cached_input_per_mtok=root.price_cached_input_per_mtok,
            per_request=root.price_per_request,
            currency=root.currency,
        )

    @staticmethod
    def resolve_sla(root: ServiceVersion, info: graphene.ResolveInfo) -> SlaType:
        return SlaType(
            availability=root.sla_availability,
            max_latency_ms=root.sla_max_latency_ms,
            timeout_ms=root.sla_timeout_ms,
            support_level=root.support_level,
        )

    @staticmethod
    def resolve_compliance(root: ServiceVersion, info: graphene.ResolveInfo) -> ComplianceType:
        return ComplianceType(
            level=root.compliance_level,
            certifications=list(root.certifications or []),
            data_residency=list(root.data_residency or []),
            gdpr_compliant=root.gdpr_compliant,
            hipaa_compliant=root.hipaa_compliant,
        )

    @staticmethod
    def resolve_endpoint_url(root: ServiceVersion, info: graphene.ResolveInfo) -> str | None:
        return root.endpoint_url if viewer(info).manages(root.service) else None


class ServiceVersionConnection(CountedConnection):
    class Meta:
        node = ServiceVersionNode


class ServiceNode(DjangoObjectType):
    """A published service: its publisher, its latest version as discovery shows it, and its versions (all of them
    for its publisher's members and staff; active and deprecated ones for consumers)."""

    publisher = graphene.Field(PublisherType, required=True)
    model_id = graphene.String(required=True)
    latest_version = graphene.Field(
        ServiceVersionNode, description="The latest active version (for its publisher: the latest in any state)."
    )
    versions = PagedConnectionField(ServiceVersionConnection, description="Newest first.")

    class Meta:
        model = Service
        interfaces = (relay.Node,)
        fields = ("id", "slug", "created_at")

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        seen = viewer(info)
        queryset = queryset.select_related("publisher")
        if seen.staff:
            return queryset
        return queryset.filter(pk__in=discovery.visible_rows(seen).values("service_id"))

    @staticmethod
    def resolve_model_id(root: Service, info: graphene.ResolveInfo) -> str:
        return str(root)

    @staticmethod
    def resolve_latest_version(root: Service, info: graphene.ResolveInfo) -> ServiceVersion | None:
        row = getattr(root, "discovery_row", None)
        if row is not None:
            return row
        versions = ServiceNode.resolve_versions(root, info)
        return versions[0] if versions else None

    @staticmethod
    def resolve_versions(root: Service, info: graphene.ResolveInfo, **kwargs: Any) -> list[ServiceVersion]:
        seen = viewer(info)

        def load(services: list[Service]) -> dict[Any, list[ServiceVersion]]:
            by_pk = {service.pk: service for service in services}
            grouped: dict[Any, list[ServiceVersion]] = {}
            rows = ServiceVersion.objects.filter(service_id__in=list(by_pk)).order_by(
                "service_id", "-major", "-minor", "-patch"
            )
            for row in rows:
                service = by_pk[row.service_id]
                if row.status in SERVABLE or seen.manages(service):
                    row.service = service
                    grouped.setdefault(row.service_id, []).append(row)
            return grouped

        return load_related(info, root, "versions", load, default=list)


class ServiceConnection(CountedConnection):
    class Meta:
        node = ServiceNode

    facets = GenericScalar(
        required=True,
        description="Counts per category, pricing model and compliance level over the whole filtered set.",
    )

    @staticmethod
    def resolve_facets(root: Any, info: graphene.ResolveInfo) -> Any:
        return getattr(root, "facets", {})


class ValidationStepType(DjangoObjectType):
    class Meta:
        model = ValidationStep
        convert_choices_to_enum = False
        fields = ("name", "position", "outcome", "messages", "duration_ms")

    messages = GenericScalar(required=True)


class ValidationRunType(DjangoObjectType):
    steps = graphene.List(graphene.NonNull(ValidationStepType), required=True)

    class Meta:
        model = ValidationRun
        convert_choices_to_enum = False
        fields = ("id", "outcome", "result_status", "started_at", "finished_at")

    @staticmethod
    def resolve_steps(root: ValidationRun, info: graphene.ResolveInfo) -> list[ValidationStep]:
        return list(root.steps.all())


def runs_of(version: ServiceVersion) -> QuerySet[ValidationRun]:
    """A version's validation runs, newest first, with their steps (two queries)."""
    steps = Prefetch("steps", queryset=ValidationStep.objects.order_by("position"))
    return ValidationRun.objects.filter(version=version).prefetch_related(steps).order_by("-started_at")


class DryRunStepType(graphene.ObjectType):
    name = graphene.String(required=True)
    outcome = graphene.String(required=True)
    messages = GenericScalar(required=True)
    duration_ms = graphene.Float()


class ServiceStatusType(graphene.ObjectType):
    """A version's publishing status and its validation runs (the publisher's members and staff only)."""

    service = graphene.Field(ServiceNode, required=True)
    version = graphene.Field(ServiceVersionNode, required=True)
    validation_runs = graphene.List(graphene.NonNull(ValidationRunType), required=True)
