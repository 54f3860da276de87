"""Views of the catalog REST API: thin adapters from HTTP to the catalog services and selectors.

Reads are open to anonymous callers (who see public rows only) and scoped by `selectors.visible_q`; writes need an
authenticated admin of the owner tenant (checked by the services). Something a caller may not see is a 404.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework import status, viewsets
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import SAFE_METHODS, BasePermission, IsAuthenticatedOrReadOnly
from rest_framework.request import Request
from rest_framework.response import Response

from apps.catalog import lineage, selectors, services
from apps.catalog.api import serializers
from apps.catalog.models import CatalogModel, Dataset, Evaluation, TrainingRun
from apps.tenancy.api.schema import TENANT_HEADER_PARAMETER
from apps.tenancy.context import require_tenant, resolve_tenant
from apps.tenancy.models import Membership, Role, Tenant
from apps.tenancy.permissions import TenantHeaderCheckMixin, has_role
from llm_infra_django.drf.schema import ErrorResponses
from llm_infra_django.drf.validation import checked
from llm_infra_django.errors import AuthorizationError, NotFoundError, ValidationError

errors = ErrorResponses(
    {
        400: "Invalid input: `error.details.fields` names each offending field by its path "
        "(e.g. `artifacts[1].sha256`).",
        401: "Not authenticated (writes need a logged-in user).",
        403: "The caller is not an admin of the owner tenant (or names, in X-Tenant, a tenant it does not belong to).",
        404: "Nothing visible to the caller has this id (private rows of other tenants are never revealed).",
        409: "Conflicts with the current state: a duplicate, an invalid transition, a lineage cycle.",
        422: "Breaks a business rule, e.g. publishing a model without a ready version.",
    }
)

HANDLE = OpenApiParameter(
    "slug",
    OpenApiTypes.STR,
    OpenApiParameter.PATH,
    description="The model's handle: `<owner-slug>--<model-slug>`, e.g. `acme--support-llama`.",
)
VERSION = OpenApiParameter("version", OpenApiTypes.STR, OpenApiParameter.PATH, description="SemVer, e.g. 1.2.0.")
DATASET_REF = OpenApiParameter(
    "ref", OpenApiTypes.STR, OpenApiParameter.PATH, description="The dataset's id or handle (`owner--slug`)."
)
OBJECT_ID = OpenApiParameter("id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class CatalogPagination(LimitOffsetPagination):
    default_limit = 50
    max_limit = 100


class FacetedPagination(CatalogPagination):
    """Limit/offset pages that also carry facet counts of the whole result."""

    def get_paginated_response(self, data: Any, facets: dict[str, Any] | None = None) -> Response:
        response = super().get_paginated_response(data)
        response.data["facets"] = facets or {}
        return response

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        paginated = super().get_paginated_response_schema(schema)
        paginated["properties"]["facets"] = {
            "type": "object",
            "description": "Counts of the matching models by category, model_type, license, visibility, "
            "commercial_use, tags and languages.",
            "additionalProperties": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
        return paginated


class CatalogViewSet(TenantHeaderCheckMixin, viewsets.GenericViewSet):
    """Base of the catalog views: open reads, authenticated writes, JSON bodies, pagination, the viewer."""

    permission_classes: ClassVar[Sequence[type[BasePermission]]] = [IsAuthenticatedOrReadOnly]
    parser_classes: ClassVar[Sequence[Any]] = [JSONParser]
    pagination_class = CatalogPagination
    filter_backends: ClassVar[Sequence[Any]] = []
    metadata_class = None

    def viewer(self) -> selectors.Viewer:
        """Who is looking (cached on the view)."""
        cached: selectors.Viewer | None = getattr(self, "_viewer", None)
        if cached is None:
            user = self.request.user
            tenant = resolve_tenant(self.request)
            authenticated = bool(getattr(user, "is_authenticated", False))
            registered = tenant is not None or (authenticated and Membership.objects.filter(user=user).exists())
            cached = selectors.Viewer(
                tenant=tenant, registered=registered, everything=bool(getattr(user, "is_superuser", False))
            )
            self._viewer = cached
        return cached

    def acting_tenant(self) -> Tenant:
        """The tenant a write is made for (403 when the caller has none, 400 when it must name one of several)."""
        return require_tenant(self.request)

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if not isinstance(data, dict):
            raise ValidationError(fields={"non_field_errors": ["The body must be a JSON object."]})
        return dict(data)

    def query(self, serializer_class: type[drf_serializers.Serializer]) -> Any:
        return checked(serializer_class(data=self.request.query_params))

    def page(self, items: Any, serializer_class: type[drf_serializers.BaseSerializer]) -> Response:
        rows = self.paginate_queryset(items)
        return self.get_paginated_response(
            serializer_class(rows, many=True, context=self.get_serializer_context()).data
        )

    def output(self, instance: Any, serializer_class: type[drf_serializers.BaseSerializer], **kwargs: Any) -> Any:
        return serializer_class(instance, context=self.get_serializer_context(), **kwargs).data


def _version_in_body(model: CatalogModel, version: Any, field: str = "version") -> Any:
    try:
        return selectors.get_version(model, str(version or ""))
    except NotFoundError:
        raise ValidationError(fields={field: [f"{model.handle} has no version {version!r}."]}) from None


# --- Models --------------------------------------------------------------------------------------------------


class CatalogModelViewSet(CatalogViewSet):
    """Models of the catalog, their versions, lineage, comparison and compliance report."""

    serializer_class = serializers.CatalogModelSerializer

    def get_queryset(self) -> QuerySet[CatalogModel]:
        if getattr(self, "swagger_fake_view", False):
            return CatalogModel.objects.none()
        return selectors.visible_models(self.viewer())

    def model(self, slug: str) -> CatalogModel:
        return selectors.get_model(self.viewer(), slug)

    @extend_schema(
        tags=["models"],
        summary="Search the catalog",
        description="Models the caller may see (anonymous callers: public ones), filtered, ordered (default: "
        "quality, highest first), with facet counts of the whole result. A fixed number of queries per page.",
        parameters=[serializers.ModelSearchSerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.CatalogModelSerializer(many=True), **errors(400, 403)},
    )
    def list(self, request: Request) -> Response:
        self.pagination_class = FacetedPagination
        queryset = selectors.search_models(self.viewer(), self.query(serializers.ModelSearchSerializer).filters())
        rows = self.paginate_queryset(queryset)
        data = self.output(rows, serializers.CatalogModelSerializer, many=True)
        return self.paginator.get_paginated_response(data, selectors.model_facets(queryset))

    @extend_schema(
        tags=["models"],
        summary="Add a model",
        description="Admins of the acting tenant. The model starts as a draft, listed to others once published.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.ModelCreateSerializer,
        responses={201: serializers.CatalogModelSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        values = self.body()
        slug = values.pop("slug", None)
        model = services.create_model(owner=self.acting_tenant(), actor=request.user, slug=slug, values=values)
        return Response(self.output(model, serializers.CatalogModelSerializer), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["models"],
        summary="Show a model",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        responses={200: serializers.CatalogModelSerializer, **errors(403, 404)},
    )
    def retrieve(self, request: Request, slug: str) -> Response:
        return Response(self.output(self.model(slug), serializers.CatalogModelSerializer))

    @extend_schema(
        tags=["models"],
        summary="Change a model",
        description="Admins of the owner. Any of the fields, and `status` through the model's state machine; all "
        "or nothing.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        request=serializers.ModelUpdateSerializer,
        responses={200: serializers.CatalogModelSerializer, **errors(400, 401, 403, 404, 409, 422)},
    )
    def partial_update(self, request: Request, slug: str) -> Response:
        model = services.update_model(model=self.model(slug), actor=request.user, values=self.body())
        return Response(self.output(model, serializers.CatalogModelSerializer))

    @extend_schema(
        tags=["models"],
        summary="Archive a model",
        description="Admins of the owner. Archived is final: the model leaves the listings; its rows, versions and "
        "lineage stay for the record.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        request=None,
        responses={204: None, **errors(401, 403, 404, 409)},
    )
    def destroy(self, request: Request, slug: str) -> Response:
        services.change_model_status(model=self.model(slug), actor=request.user, status="archived")
        return Response(status=status.HTTP_204_NO_CONTENT)

    # --- versions ---

    @extend_schema(
        tags=["versions"],
        summary="List a model's versions",
        description="Greatest SemVer first.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        responses={200: serializers.ModelVersionSerializer(many=True), **errors(400, 403, 404)},
    )
    def versions(self, request: Request, slug: str) -> Response:
        return self.page(selectors.list_versions(self.model(slug)), serializers.ModelVersionSerializer)

    @extend_schema(
        tags=["versions"],
        summary="Add a version",
        description="Admins of the owner. The version must be greater (SemVer precedence) than every existing one; "
        "artifacts need a 64-hex SHA-256 each.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        request=serializers.VersionCreateSerializer,
        responses={201: serializers.ModelVersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def create_version(self, request: Request, slug: str) -> Response:
        model = self.model(slug)
        values = self.body()
        number = values.pop("version", None)
        served_by = values.pop("served_by", None)
        created = services.create_version(
            model=model, actor=request.user, version=number, values=values, served_by=served_by
        )
        version = selectors.get_version(model, created.version)
        return Response(self.output(version, serializers.ModelVersionSerializer), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["versions"],
        summary="Show a version",
        parameters=[HANDLE, VERSION, TENANT_HEADER_PARAMETER],
        responses={200: serializers.ModelVersionSerializer, **errors(403, 404)},
    )
    def version(self, request: Request, slug: str, version: str) -> Response:
        return Response(
            self.output(selectors.get_version(self.model(slug), version), serializers.ModelVersionSerializer)
        )

    @extend_schema(
        tags=["versions"],
        summary="Change a version",
        description="Admins of the owner: status (building → evaluating → ready → deprecated), changelog, "
        "performance figures, serving service versions; artifacts only while building.",
        parameters=[HANDLE, VERSION, TENANT_HEADER_PARAMETER],
        request=serializers.VersionWriteSerializer,
        responses={200: serializers.ModelVersionSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def update_version(self, request: Request, slug: str, version: str) -> Response:
        model = self.model(slug)
        values = self.body()
        served_by = values.pop("served_by", None)
        services.update_version(
            version=selectors.get_version(model, version), actor=request.user, values=values, served_by=served_by
        )
        return Response(self.output(selectors.get_version(model, version), serializers.ModelVersionSerializer))

    # --- lineage, comparison, compliance ---

    @extend_schema(
        tags=["lineage"],
        summary="A model's lineage, ready to draw",
        description="Ancestors and descendants of the model's versions (or of one) within `depth` edges, with "
        "layered positions. A fixed number of queries whatever the depth.",
        parameters=[HANDLE, serializers.LineageQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.LineageSerializer, **errors(400, 403, 404)},
    )
    def lineage(self, request: Request, slug: str) -> Response:
        model = self.model(slug)
        params = self.query(serializers.LineageQuerySerializer).validated_data
        depth = lineage.clean_depth(params.get("depth"))
        version = params.get("version")
        if version:
            _version_in_body(model, version)
        drawn = selectors.model_lineage(model, depth=depth, version=version, viewer=self.viewer())
        return Response(self.output(drawn, serializers.LineageSerializer))

    @extend_schema(
        tags=["lineage"],
        summary="Record a lineage edge",
        description='Admins of the owner: "source <type> target" in the owner\'s graph (a version trained_on a '
        "dataset, derived_from a base model, ...). 409 `lineage_cycle` when it would close a cycle.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        request=serializers.LineageEdgeCreateSerializer,
        responses={201: serializers.LineageEdgeSerializer, **errors(400, 401, 403, 404, 409)},
    )
    def add_edge(self, request: Request, slug: str) -> Response:
        model = self.model(slug)
        data = self.body()
        edge = services.add_lineage_edge(
            owner=model.owner,
            actor=request.user,
            source=data.get("source"),
            target=data.get("target"),
            edge_type=data.get("type"),
        )
        payload = {"source": edge.source.uid, "target": edge.target.uid, "type": edge.edge_type}
        return Response(self.output(payload, serializers.LineageEdgeSerializer), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["models"],
        summary="Compare two versions",
        description="Size, performance, quality and per-benchmark scores of versions `a` and `b`, with deltas b − a.",
        parameters=[HANDLE, serializers.CompareQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.VersionComparisonSerializer, **errors(400, 403, 404)},
    )
    def compare(self, request: Request, slug: str) -> Response:
        model = self.model(slug)
        params = self.query(serializers.CompareQuerySerializer).validated_data
        _version_in_body(model, params["a"], "a")
        _version_in_body(model, params["b"], "b")
        return Response(
            self.output(
                selectors.compare_versions(model, params["a"], params["b"]), serializers.VersionComparisonSerializer
            )
        )

    @extend_schema(
        tags=["models"],
        summary="Provenance compliance report",
        description="Rules over the datasets in the model's lineage: PII not removed (GDPR, CCPA), health data "
        "without HIPAA certification, missing licenses (warnings), commercial-use conflicts.",
        parameters=[HANDLE, TENANT_HEADER_PARAMETER],
        responses={200: serializers.ModelComplianceSerializer, **errors(403, 404)},
    )
    def compliance(self, request: Request, slug: str) -> Response:
        report = selectors.model_compliance(self.model(slug), self.viewer())
        return Response(self.output(report.as_dict(), serializers.ModelComplianceSerializer))


# --- Datasets ------------------------------------------------------------------------------------------------


class DatasetViewSet(CatalogViewSet):
    """Datasets and their provenance."""

    serializer_class = serializers.DatasetSerializer

    def get_queryset(self) -> QuerySet[Dataset]:
        if getattr(self, "swagger_fake_view", False):
            return Dataset.objects.none()
        return selectors.visible_datasets(self.viewer()).select_related("owner")

    @extend_schema(
        tags=["datasets"],
        summary="List datasets",
        description="Datasets the caller may see (same visibility rules as models, whatever their status).",
        parameters=[serializers.DatasetQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.DatasetSerializer(many=True), **errors(400, 403)},
    )
    def list(self, request: Request) -> Response:
        params = self.query(serializers.DatasetQuerySerializer).validated_data
        filters = {
            name: params[name] for name in ("owner", "visibility", "license", "commercial_use") if name in params
        }
        return self.page(selectors.search_datasets(self.viewer(), **filters), serializers.DatasetSerializer)

    @extend_schema(
        tags=["datasets"],
        summary="Register a dataset",
        description="Admins of the acting tenant. Sources, license terms (commercial use, derivatives, "
        "redistribution), PII and health-data flags, certifications, checksum.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.DatasetCreateSerializer,
        responses={201: serializers.DatasetSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        values = self.body()
        slug = values.pop("slug", None)
        dataset = services.create_dataset(owner=self.acting_tenant(), actor=request.user, slug=slug, values=values)
        return Response(self.output(dataset, serializers.DatasetSerializer), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["datasets"],
        summary="Show a dataset",
        parameters=[DATASET_REF, TENANT_HEADER_PARAMETER],
        responses={200: serializers.DatasetSerializer, **errors(403, 404)},
    )
    def retrieve(self, request: Request, ref: str) -> Response:
        return Response(self.output(selectors.get_dataset(self.viewer(), ref), serializers.DatasetSerializer))

    @extend_schema(
        tags=["datasets"],
        summary="Change a dataset",
        description="Admins of the owner.",
        parameters=[DATASET_REF, TENANT_HEADER_PARAMETER],
        request=serializers.DatasetWriteSerializer,
        responses={200: serializers.DatasetSerializer, **errors(400, 401, 403, 404)},
    )
    def partial_update(self, request: Request, ref: str) -> Response:
        dataset = services.update_dataset(
            dataset=selectors.get_dataset(self.viewer(), ref), actor=request.user, values=self.body()
        )
        return Response(self.output(dataset, serializers.DatasetSerializer))


# --- Training runs -------------------------------------------------------------------------------------------


class IsActingTenantMember(BasePermission):
    """Members of the acting tenant read; its admins write (the services check again)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not getattr(request.user, "is_authenticated", False):
            return False
        tenant = view.acting_tenant()
        needed = Role.VIEWER if request.method in SAFE_METHODS else Role.ADMIN
        if not has_role(request, tenant, needed):
            raise AuthorizationError(f"This needs the {needed} role in tenant '{tenant.slug}'.")
        return True


class TrainingRunViewSet(CatalogViewSet):
    """Training runs of the acting tenant (never shown to other tenants)."""

    serializer_class = serializers.TrainingRunSerializer
    permission_classes: ClassVar[Sequence[type[BasePermission]]] = [IsActingTenantMember]

    def get_queryset(self) -> QuerySet[TrainingRun]:
        if getattr(self, "swagger_fake_view", False):
            return TrainingRun.objects.none()
        return selectors.list_training_runs(self.acting_tenant())

    @extend_schema(
        tags=["training runs"],
        summary="List the acting tenant's training runs",
        parameters=[TENANT_HEADER_PARAMETER],
        responses={200: serializers.TrainingRunSerializer(many=True), **errors(400, 401, 403)},
    )
    def list(self, request: Request) -> Response:
        return self.page(self.get_queryset(), serializers.TrainingRunSerializer)

    @extend_schema(
        tags=["training runs"],
        summary="Record a training run",
        description="Admins. The run is trained_on its datasets and the version it produced derives from it "
        "(lineage edges are added).",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.TrainingRunCreateSerializer,
        responses={201: serializers.TrainingRunSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        values = self.body()
        datasets = values.pop("datasets", [])
        produced = values.pop("model_version", None)
        if not isinstance(datasets, list):
            raise ValidationError(fields={"datasets": ["A list of dataset ids or handles."]})
        run = services.create_training_run(
            owner=self.acting_tenant(), actor=request.user, values=values, datasets=datasets, model_version=produced
        )
        run = self.get_queryset().get(pk=run.pk)
        return Response(self.output(run, serializers.TrainingRunSerializer), status=status.HTTP_201_CREATED)

    @extend_schema(
        tags=["training runs"],
        summary="Show a training run",
        parameters=[OBJECT_ID, TENANT_HEADER_PARAMETER],
        responses={200: serializers.TrainingRunSerializer, **errors(401, 403, 404)},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        run = self.get_queryset().filter(pk=pk).first()
        if run is None:
            raise NotFoundError("Training run", pk)
        return Response(self.output(run, serializers.TrainingRunSerializer))


# --- Evaluations ---------------------------------------------------------------------------------------------


class EvaluationViewSet(CatalogViewSet):
    """Benchmark results of visible models' versions; their owners submit, correct and withdraw them."""

    serializer_class = serializers.EvaluationSerializer

    def get_queryset(self) -> QuerySet[Evaluation]:
        if getattr(self, "swagger_fake_view", False):
            return Evaluation.objects.none()
        return selectors.visible_evaluations(self.viewer())

    @extend_schema(
        tags=["evaluations"],
        summary="List evaluations",
        parameters=[serializers.EvaluationQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.EvaluationSerializer(many=True), **errors(400, 403)},
    )
    def list(self, request: Request) -> Response:
        params = self.query(serializers.EvaluationQuerySerializer).validated_data
        filters = {name: params[name] for name in ("model", "version", "benchmark", "status") if params.get(name)}
        return self.page(selectors.search_evaluations(self.viewer(), **filters), serializers.EvaluationSerializer)

    @extend_schema(
        tags=["evaluations"],
        summary="Submit an evaluation",
        description="Admins of the model's owner: a result (`score` 0-100, raw `scores`), a failed run (`status` "
        "failed with `error`), or `run: true` to have the configured evaluator run it (pending until it answers). "
        "The quality score is recomputed.",
        parameters=[TENANT_HEADER_PARAMETER],
        request=serializers.EvaluationCreateSerializer,
        responses={201: serializers.EvaluationSerializer, **errors(400, 401, 403, 409)},
    )
    def create(self, request: Request) -> Response:
        values = self.body()
        handle, number = values.pop("model", None), values.pop("version", None)
        try:
            model = selectors.get_model(self.viewer(), str(handle or ""))
        except NotFoundError:
            raise ValidationError(fields={"model": [f"No model visible to you has the handle {handle!r}."]}) from None
        version = _version_in_body(model, number)
        evaluation = services.submit_evaluation(version=version, actor=request.user, values=values)
        return Response(
            self.output(self.get_queryset().get(pk=evaluation.pk), serializers.EvaluationSerializer),
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        tags=["evaluations"],
        summary="Show an evaluation",
        parameters=[OBJECT_ID, TENANT_HEADER_PARAMETER],
        responses={200: serializers.EvaluationSerializer, **errors(403, 404)},
    )
    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(self.output(selectors.get_evaluation(self.viewer(), pk), serializers.EvaluationSerializer))

    @extend_schema(
        tags=["evaluations"],
        summary="Correct an evaluation",
        description="Admins of the model's owner; the quality score is recomputed.",
        parameters=[OBJECT_ID, TENANT_HEADER_PARAMETER],
        request=serializers.EvaluationUpdateSerializer,
        responses={200: serializers.EvaluationSerializer, **errors(400, 401, 403, 404)},
    )
    def partial_update(self, request: Request, pk: str) -> Response:
        evaluation = services.update_evaluation(
            evaluation=selectors.get_evaluation(self.viewer(), pk), actor=request.user, values=self.body()
        )
        return Response(self.output(self.get_queryset().get(pk=evaluation.pk), serializers.EvaluationSerializer))

    @extend_schema(
        tags=["evaluations"],
        summary="Withdraw an evaluation",
        description="Admins of the model's owner; the quality score is recomputed.",
        parameters=[OBJECT_ID, TENANT_HEADER_PARAMETER],
        request=None,
        responses={204: None, **errors(401, 403, 404)},
    )
    def destroy(self, request: Request, pk: str) -> Response:
        services.delete_evaluation(evaluation=selectors.get_evaluation(self.viewer(), pk), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Leaderboard ---------------------------------------------------------------------------------------------


class LeaderboardViewSet(CatalogViewSet):
    """Visible models ranked by a benchmark or by quality score."""

    serializer_class = serializers.LeaderboardRowSerializer

    def get_queryset(self) -> QuerySet[CatalogModel]:
        return CatalogModel.objects.none()  # rows come from `selectors.leaderboard`; this only types the schema

    @extend_schema(
        tags=["leaderboard"],
        summary="Leaderboard",
        description="With `benchmark`: each visible model's best completed result on it (versions that failed "
        "excluded), highest first; without: models by quality score. Equal scores share a rank (1, 2, 2, 4) and are "
        "listed by handle, so the order is stable.",
        parameters=[serializers.LeaderboardQuerySerializer, TENANT_HEADER_PARAMETER],
        responses={200: serializers.LeaderboardRowSerializer(many=True), **errors(400, 403)},
    )
    def list(self, request: Request) -> Response:
        params = self.query(serializers.LeaderboardQuerySerializer).validated_data
        rows = selectors.leaderboard(
            self.viewer(),
            benchmark=params.get("benchmark", ""),
            benchmark_version=params.get("benchmark_version", ""),
            category=params.get("category", ""),
        )
        return self.page(rows, serializers.LeaderboardRowSerializer)
