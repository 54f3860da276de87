"""Views of the publishing REST API: thin adapters from HTTP to the publishing services and discovery selectors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar
from uuid import UUID

from django.db.models import Prefetch
from django.urls import reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status, viewsets
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apps.publishing import discovery, services
from apps.publishing.api import serializers
from apps.publishing.api.examples import (
    DISCOVERY_EXAMPLE,
    DRY_RUN_RESULT_EXAMPLE,
    PUBLISH_REQUEST_EXAMPLE,
    PUBLISH_RESULT_EXAMPLE,
    VERSION_REQUEST_EXAMPLE,
)
from apps.publishing.conf import publishing_settings
from apps.publishing.models import Service, ServiceVersion, ValidationRun, ValidationStep
from apps.tenancy.api.schema import tenant_header_parameter
from apps.tenancy.context import require_tenant, resolve_tenant
from apps.tenancy.permissions import IsPlatformStaff
from llm_infra_django.body import read_body
from llm_infra_django.drf.schema import ErrorResponses
from llm_infra_django.drf.validation import ValidatedInputMixin
from llm_infra_django.errors import AuthorizationError, ValidationError

errors = ErrorResponses(
    {
        400: "Invalid input: `error.details.fields` maps each offending field path (`endpoint.url`, `tags[0]`) to "
        "its messages. Malformed JSON is a `parse_error`.",
        401: "Not authenticated.",
        402: "The publisher's `services_published` quota is exhausted.",
        403: "Authenticated, but not allowed: publisher admins change their services; platform staff approve, reject, "
        "suspend and lift suspensions.",
        404: "No service (or version) visible to the caller has this id.",
        409: "Conflicts with the current state: a duplicate slug, or a lifecycle transition that is not allowed (the "
        "allowed ones are listed in `error.details.allowed`).",
        413: "The body is larger than `MARKETPLACE_PUBLISHING['MAX_SERVICE_BYTES']`.",
        415: "The body is not JSON.",
    }
)

TENANT_HEADER_PARAMETER = tenant_header_parameter(
    "Slug of the tenant to act for (publisher or consumer); needed when the caller belongs to several."
)


class ServiceViewSet(ValidatedInputMixin, viewsets.ViewSet):
    """Publishing and discovery of services (`/api/v1/services/...`)."""

    parser_classes = [JSONParser]
    metadata_class = None
    permission_classes = [IsAuthenticated]
    staff_actions: ClassVar[frozenset[str]] = frozenset({"approve", "reject", "suspend"})

    def get_permissions(self) -> list[BasePermission]:
        if self.action in self.staff_actions:
            return [IsAuthenticated(), IsPlatformStaff()]
        return [IsAuthenticated()]

    # --- Helpers -------------------------------------------------------------------------------------------

    def viewer(self) -> discovery.Viewer:
        """The caller: the tenant it consumes as, the tenants it manages, whether it is platform staff."""
        cached: discovery.Viewer | None = getattr(self, "_viewer", None)
        if cached is None:
            consumer = resolve_tenant(self.request)
            # A tenant's API key acts for its tenant only, whatever its creator's other memberships.
            key_tenant = getattr(self.request.auth, "tenant_id", None)
            own = [UUID(str(key_tenant))] if key_tenant is not None else None
            cached = discovery.viewer_of(consumer, self.request.user, own_tenant_ids=own)
            self._viewer = cached
        return cached

    def get_serializer_context(self) -> dict[str, Any]:
        return {"request": self.request, "view": self, "viewer": self.viewer()}

    def body(self) -> Any:
        """The parsed JSON body, refused (413) above `MAX_SERVICE_BYTES` before it is parsed."""
        read_body(self.request._request, publishing_settings.MAX_SERVICE_BYTES)
        try:
            return self.request.data
        except RecursionError:
            raise ValidationError("The JSON document is nested too deeply.", code="parse_error") from None

    def action_body(self, serializer_class: type[BaseSerializer]) -> dict[str, Any]:
        data = self.body()
        return self.validated(serializer_class, {} if data is None or data == {} else data)

    def service(self, pk: UUID) -> Service:
        return discovery.get_visible_service(pk, self.viewer())

    def managed_service(self, pk: UUID) -> Service:
        """A service the caller manages (publisher member or staff); 404 if invisible, 403 if only visible."""
        service = self.service(pk)
        if not self.viewer().manages(service):
            raise AuthorizationError("Only the publisher's members and platform staff can see this.")
        return service

    def version_payload(self, version_id: Any) -> dict[str, Any]:
        version = ServiceVersion.objects.select_related("service__publisher").get(pk=version_id)
        return serializers.VersionSerializer(version, context=self.get_serializer_context()).data

    def detail_payload(self, service: Service) -> dict[str, Any]:
        service.visible_versions = list(discovery.list_versions(service, self.viewer()))
        return serializers.ServiceDetailSerializer(service, context=self.get_serializer_context()).data

    def publish_result(self, version_id: Any, run_id: Any) -> Response:
        """202 with the version and its run as they stand (the pipeline ran eagerly unless a broker is set)."""
        version = ServiceVersion.objects.select_related("service__publisher").get(pk=version_id)
        run = ValidationRun.objects.prefetch_related(_steps()).get(pk=run_id)
        data = serializers.PublishResultSerializer(
            {"service": version.service, "version": version, "validation_run": run},
            context=self.get_serializer_context(),
        ).data
        location = f"{reverse('publishing:service-status', args=[version.service_id])}?version={version.version}"
        return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})

    def lifecycle(
        self,
        pk: UUID,
        serializer_class: type[BaseSerializer],
        call: Callable[[ServiceVersion, dict[str, Any]], Any],
    ) -> Response:
        service = self.service(pk)
        data = self.action_body(serializer_class)
        version = discovery.get_version(service, data.pop("version", None))
        call(version, data)
        return Response(self.version_payload(version.pk))

    # --- Discovery and publishing ------------------------------------------------------------------------

    @extend_schema(
        tags=["services"],
        summary="Discover services",
        description="One row per service: the latest active version for consumers (services shared with the "
        "caller's tenant included); the latest version in any state for the caller's own services; every service "
        "for platform staff. Filters combine with AND; list filters match any of their values. Facet counts cover "
        "the whole filtered set.",
        parameters=[serializers.DiscoveryQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={
            200: OpenApiResponse(
                serializers.DiscoveryPageSerializer,
                examples=[OpenApiExample("A page", value=DISCOVERY_EXAMPLE, response_only=True)],
            ),
            **errors(400, 401, 403),
        },
    )
    def list(self, request: Request) -> Response:
        query = self.validated(serializers.DiscoveryQuerySerializer, request.query_params)
        params = discovery.DiscoveryParams.from_query(query)
        viewer = self.viewer()
        page = discovery.list_services(viewer.consumer, request.user, params, own_tenant_ids=viewer.own_tenant_ids)
        url = request.build_absolute_uri()
        next_url = previous_url = None
        if page.offset + page.limit < page.count:
            next_url = replace_query_param(
                replace_query_param(url, "limit", page.limit), "offset", page.offset + page.limit
            )
        if page.offset > 0:
            previous_url = replace_query_param(url, "limit", page.limit)
            previous_offset = max(0, page.offset - page.limit)
            previous_url = (
                replace_query_param(previous_url, "offset", previous_offset)
                if previous_offset
                else remove_query_param(previous_url, "offset")
            )
        payload = {
            "count": page.count,
            "limit": page.limit,
            "offset": page.offset,
            "next": next_url,
            "previous": previous_url,
            "results": page.results,
            "facets": page.facets,
        }
        return Response(serializers.DiscoveryPageSerializer(payload, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["services"],
        summary="Publish a service",
        description="Creates the service and its first version for the caller's tenant (publisher admins) and "
        "starts the publishing pipeline: schema, OpenAPI, policy, endpoint probe, registry sync, approval. Answers "
        "202 with the version and its validation run as they stand: without a Celery broker the pipeline has "
        "already run, so the status is final (`active`, `pending_approval` or `failed_validation`). The upstream "
        "secret is stored encrypted and never returned.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.ServicePublishSerializer,
        examples=[OpenApiExample("An OpenAI-compatible service", value=PUBLISH_REQUEST_EXAMPLE, request_only=True)],
        responses={
            202: OpenApiResponse(
                serializers.PublishResultSerializer,
                examples=[OpenApiExample("Published", value=PUBLISH_RESULT_EXAMPLE, response_only=True)],
            ),
            **errors(400, 401, 402, 403, 409, 413, 415),
        },
    )
    def create(self, request: Request) -> Response:
        data = self.validated(serializers.ServicePublishSerializer, self.body())
        slug, version = data.pop("slug"), data.pop("version")
        publisher = require_tenant(request)
        assert publisher is not None  # required=True raises instead
        _service, created, run = services.publish_service(
            publisher=publisher, actor=request.user, slug=slug, version=version, values=data
        )
        return self.publish_result(created.pk, run.pk)

    @extend_schema(
        tags=["services"],
        summary="Dry-run validation",
        description="Runs the schema, OpenAPI and policy steps on a definition and saves nothing. Rule violations "
        "are reported in the steps (`valid: false`); malformed input is a 400 like on publish.",
        request=serializers.DryRunSerializer,
        examples=[OpenApiExample("A definition", value=PUBLISH_REQUEST_EXAMPLE, request_only=True)],
        responses={
            200: OpenApiResponse(
                serializers.DryRunResultSerializer,
                examples=[OpenApiExample("A failing definition", value=DRY_RUN_RESULT_EXAMPLE, response_only=True)],
            ),
            **errors(400, 401, 403, 404, 413, 415),
        },
    )
    def validate(self, request: Request) -> Response:
        data = self.validated(serializers.DryRunSerializer, self.body())
        service_id = data.pop("service", None)
        data.pop("slug", None)
        version = data.pop("version")
        service = self.managed_service(service_id) if service_id else None
        publisher = None if service else resolve_tenant(request)
        steps = services.dry_run(version=version, values=data, service=service, publisher=publisher)
        result = {"valid": all(step["outcome"] != "failed" for step in steps), "steps": steps}
        return Response(serializers.DryRunResultSerializer(result).data)

    @extend_schema(
        tags=["services"],
        summary="Show a service",
        description="The service and its versions, newest first (consumers see active and deprecated versions; the "
        "publisher's members and staff see all, with the endpoint URL).",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.ServiceDetailSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, pk: UUID) -> Response:
        return Response(self.detail_payload(self.service(pk)))

    @extend_schema(
        tags=["services"],
        summary="Retire a service",
        description="Deleting a service retires every active, deprecated or suspended version (publisher admins or "
        "staff). Nothing is deleted: usage history keeps its references.",
        responses={200: serializers.RetireServiceResultSerializer, **errors(401, 403, 404)},
    )
    def destroy(self, request: Request, pk: UUID) -> Response:
        service = self.service(pk)
        retired = services.retire_service(service=service, actor=request.user)
        payload = {"retired_versions": retired, "service": self.detail_payload(service)}
        return Response(payload)

    # --- Versions ----------------------------------------------------------------------------------------

    @extend_schema(
        tags=["services"],
        summary="List a service's versions",
        description="Newest first; consumers see active and deprecated versions only.",
        responses={200: serializers.VersionSerializer(many=True), **errors(401, 403, 404)},
    )
    def versions(self, request: Request, pk: UUID) -> Response:
        service = self.service(pk)
        versions = discovery.list_versions(service, self.viewer())
        return Response(serializers.VersionSerializer(versions, many=True, context=self.get_serializer_context()).data)

    @extend_schema(
        tags=["services"],
        summary="Publish a new version",
        description="The version must be strictly greater (SemVer, no pre-release or build suffix) than every "
        "earlier one. Starts the pipeline and answers 202 like publishing a service.",
        request=serializers.ServiceDefinitionSerializer,
        examples=[OpenApiExample("Version 1.1.0", value=VERSION_REQUEST_EXAMPLE, request_only=True)],
        responses={202: serializers.PublishResultSerializer, **errors(400, 401, 403, 404, 413, 415)},
    )
    def create_version(self, request: Request, pk: UUID) -> Response:
        service = self.service(pk)
        data = self.validated(serializers.ServiceDefinitionSerializer, self.body())
        version = data.pop("version")
        created, run = services.publish_version(service=service, actor=request.user, version=version, values=data)
        return self.publish_result(created.pk, run.pk)

    @extend_schema(
        tags=["services"],
        summary="Publishing status",
        description="A version's status (default: the latest that is not retired) and its validation runs with "
        "every step's outcome, messages and duration. The publisher's members and staff only.",
        parameters=[serializers.StatusQuerySerializer],
        responses={200: serializers.ServiceStatusSerializer, **errors(401, 403, 404)},
    )
    def publishing_status(self, request: Request, pk: UUID) -> Response:
        service = self.managed_service(pk)
        number = self.validated(serializers.StatusQuerySerializer, request.query_params).get("version") or None
        version = discovery.get_version(service, number)
        runs = ValidationRun.objects.filter(version=version).prefetch_related(_steps()).order_by("-started_at")
        payload = {"service": service, "version": version, "validation_runs": list(runs)}
        return Response(serializers.ServiceStatusSerializer(payload, context=self.get_serializer_context()).data)

    # --- Lifecycle ---------------------------------------------------------------------------------------

    @extend_schema(
        tags=["service lifecycle"],
        summary="Approve a version",
        description="Platform staff: pending_approval → active.",
        request=serializers.VersionApproveSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def approve(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionApproveSerializer,
            lambda v, d: services.approve_version(version=v, actor=request.user, notes=d.get("notes", "")),
        )

    @extend_schema(
        tags=["service lifecycle"],
        summary="Reject a version",
        description="Platform staff: pending_approval → rejected, with notes for the publisher.",
        request=serializers.VersionRejectSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def reject(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionRejectSerializer,
            lambda v, d: services.reject_version(version=v, actor=request.user, notes=d["notes"]),
        )

    @extend_schema(
        tags=["service lifecycle"],
        summary="Deprecate a version",
        description="Publisher admins: active → deprecated; retired automatically after the grace period.",
        request=serializers.VersionActionSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def deprecate(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionActionSerializer,
            lambda v, d: services.deprecate_version(version=v, actor=request.user),
        )

    @extend_schema(
        tags=["service lifecycle"],
        summary="Suspend a version",
        description="Platform staff: active → suspended, with the reason.",
        request=serializers.VersionSuspendSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def suspend(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionSuspendSerializer,
            lambda v, d: services.suspend_version(version=v, actor=request.user, reason=d["reason"]),
        )

    @extend_schema(
        tags=["service lifecycle"],
        summary="Reactivate a version",
        description="Back to active: platform staff lift a suspension; publisher admins undo a deprecation.",
        request=serializers.VersionActionSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def reactivate(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionActionSerializer,
            lambda v, d: services.reactivate_version(version=v, actor=request.user),
        )

    @extend_schema(
        tags=["service lifecycle"],
        summary="Retire a version",
        description="Publisher admins or staff: active, deprecated or suspended → retired (terminal).",
        request=serializers.VersionActionSerializer,
        responses={200: serializers.VersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def retire(self, request: Request, pk: UUID) -> Response:
        return self.lifecycle(
            pk,
            serializers.VersionActionSerializer,
            lambda v, d: services.retire_version(version=v, actor=request.user),
        )


def _steps() -> Prefetch:
    return Prefetch("steps", queryset=ValidationStep.objects.order_by("position"))
