"""GraphQL types of the catalog. Node types are scoped by `get_queryset` exactly as the REST API (the catalog
selectors), so a Relay id of something the caller may not see resolves to null; nested lists load per page."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import QuerySet
from graphene import relay
from graphene.types.generic import GenericScalar
from graphene_django import DjangoObjectType

from apps.catalog import selectors
from apps.catalog.graphql import loaders
from apps.catalog.graphql.scope import viewer
from apps.catalog.models import CatalogModel, Dataset, Evaluation, ModelVersion, ServedBy, TrainingRun
from apps.tenancy.context import resolve_tenant
from apps.tenancy.models import Role
from apps.tenancy.permissions import has_role
from llm_infra_django.graphql import CountedConnection, PagedConnectionField

# Node type names, for other apps' types that link to the catalog (e.g. through
# `loaders.model_version_for_service_version`).
MODEL_NODE = "CatalogModelNode"
VERSION_NODE = "ModelVersionNode"
EVALUATION_NODE = "EvaluationNode"
DATASET_NODE = "DatasetNode"
TRAINING_RUN_NODE = "TrainingRunNode"

Strings = graphene.List(graphene.NonNull(graphene.String), required=True)


class ModelArtifact(graphene.ObjectType):
    uri = graphene.String(required=True)
    format = graphene.String(required=True)
    size_bytes = graphene.BigInt(required=True)
    sha256 = graphene.String(required=True)


class DatasetSource(graphene.ObjectType):
    type = graphene.String(required=True)
    uri = graphene.String()
    description = graphene.String()


class ServedByLink(graphene.ObjectType):
    """A published service version serving a model version."""

    service_version_id = graphene.ID(required=True)
    model_id = graphene.String(required=True, description="The consumer-facing model id of the service version.")
    status = graphene.String(required=True)

    @staticmethod
    def of(link: ServedBy) -> ServedByLink:
        return ServedByLink(
            service_version_id=str(link.service_version_id),
            model_id=str(link.service_version),
            status=str(link.service_version.status),
        )


class CatalogModelNode(DjangoObjectType):
    """A model of the catalog (its content lives in its versions)."""

    handle = graphene.String(required=True, description="`<owner>--<slug>`: the model's id in URLs.")
    owner = graphene.String(required=True, description="Slug of the owner tenant.")
    tags = Strings
    languages = Strings
    quality_breakdown = GenericScalar(required=True, description="Parts, applied weights and version.")
    latest_version = graphene.Field(
        lambda: ModelVersionNode, description="Greatest ready release (pre-releases excluded)."
    )
    versions = PagedConnectionField(lambda: ModelVersionConnection, description="Greatest SemVer first.")

    class Meta:
        model = CatalogModel
        name = MODEL_NODE
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "slug",
            "name",
            "description",
            "base_model_name",
            "base_model_provider",
            "model_type",
            "architecture",
            "category",
            "license",
            "commercial_use",
            "open_offers",
            "visibility",
            "status",
            "quality_score",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return selectors.visible_models(viewer(info)).select_related("owner") & queryset.all()

    @staticmethod
    def resolve_handle(root: CatalogModel, info: graphene.ResolveInfo) -> str:
        return root.handle

    @staticmethod
    def resolve_owner(root: CatalogModel, info: graphene.ResolveInfo) -> str:
        return root.owner.slug

    @staticmethod
    def resolve_latest_version(root: CatalogModel, info: graphene.ResolveInfo) -> ModelVersion | None:
        return selectors.latest_version(loaders.versions_of(info, root))

    @staticmethod
    def resolve_versions(root: CatalogModel, info: graphene.ResolveInfo, **kwargs: Any) -> list[ModelVersion]:
        return loaders.versions_of(info, root)


class ModelVersionNode(DjangoObjectType):
    """One SemVer version of a model."""

    model = graphene.Field(CatalogModelNode, required=True)
    artifacts = graphene.List(graphene.NonNull(ModelArtifact), required=True)
    quality_breakdown = GenericScalar(required=True)
    served_by = graphene.List(graphene.NonNull(ServedByLink), required=True)
    evaluations = PagedConnectionField(
        lambda: EvaluationConnection,
        benchmark=graphene.String(description="Only this benchmark (by name, any case)."),
        status=graphene.String(),
        description="Newest first.",
    )

    class Meta:
        model = ModelVersion
        name = VERSION_NODE
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "version",
            "status",
            "size_bytes",
            "parameter_count",
            "changelog",
            "breaking",
            "p50_latency_ms",
            "p95_latency_ms",
            "throughput_tokens_per_s",
            "quality_score",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return queryset.filter(model__in=selectors.visible_models(viewer(info))).select_related("model__owner")

    @staticmethod
    def resolve_model(root: ModelVersion, info: graphene.ResolveInfo) -> CatalogModel:
        return loaders.model_of(info, root)

    @staticmethod
    def resolve_artifacts(root: ModelVersion, info: graphene.ResolveInfo) -> list[dict[str, Any]]:
        return [a for a in root.artifacts or [] if isinstance(a, dict)]

    @staticmethod
    def resolve_served_by(root: ModelVersion, info: graphene.ResolveInfo) -> list[ServedByLink]:
        return [ServedByLink.of(link) for link in loaders.served_by_of(info, root)]

    @staticmethod
    def resolve_evaluations(
        root: ModelVersion,
        info: graphene.ResolveInfo,
        benchmark: str | None = None,
        status: str | None = None,
        **_: Any,
    ) -> list[Evaluation]:
        rows = loaders.evaluations_of(info, root)
        if benchmark:
            rows = [e for e in rows if e.benchmark_name.lower() == benchmark.lower()]
        if status:
            rows = [e for e in rows if e.status == status]
        return rows


class EvaluationNode(DjangoObjectType):
    """A benchmark result of a model version (`score` 0-100)."""

    model = graphene.Field(CatalogModelNode, required=True)
    model_version = graphene.Field(ModelVersionNode, required=True)
    version = graphene.String(required=True, description="The model version's SemVer.")
    scores = GenericScalar(required=True, description="Raw metrics.")

    class Meta:
        model = Evaluation
        name = EVALUATION_NODE
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "benchmark",
            "benchmark_name",
            "benchmark_version",
            "dimension",
            "score",
            "status",
            "source",
            "error",
            "completed_at",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return selectors.visible_evaluations(viewer(info)) & queryset.all()

    @staticmethod
    def resolve_model_version(root: Evaluation, info: graphene.ResolveInfo) -> ModelVersion | None:
        return loaders.version_of(info, root)

    @staticmethod
    def resolve_model(root: Evaluation, info: graphene.ResolveInfo) -> CatalogModel:
        return loaders.model_of(info, loaders.version_of(info, root))

    @staticmethod
    def resolve_version(root: Evaluation, info: graphene.ResolveInfo) -> str:
        return loaders.version_of(info, root).version


class DatasetNode(DjangoObjectType):
    """A dataset with its provenance."""

    handle = graphene.String(required=True)
    owner = graphene.String(required=True, description="Slug of the owner tenant.")
    sources = graphene.List(graphene.NonNull(DatasetSource), required=True)
    certifications = Strings

    class Meta:
        model = Dataset
        name = DATASET_NODE
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "slug",
            "name",
            "description",
            "license",
            "commercial_use",
            "derivatives",
            "redistribution",
            "pii_detected",
            "pii_removed",
            "contains_health_data",
            "checksum_sha256",
            "size_bytes",
            "record_count",
            "visibility",
            "created_at",
            "updated_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        return selectors.visible_datasets(viewer(info)).select_related("owner") & queryset.all()

    @staticmethod
    def resolve_handle(root: Dataset, info: graphene.ResolveInfo) -> str:
        return root.handle

    @staticmethod
    def resolve_owner(root: Dataset, info: graphene.ResolveInfo) -> str:
        return root.owner.slug

    @staticmethod
    def resolve_sources(root: Dataset, info: graphene.ResolveInfo) -> list[dict[str, Any]]:
        return [s for s in root.sources or [] if isinstance(s, dict)]


class TrainingRunNode(DjangoObjectType):
    """A training run of the acting tenant (never shown to other tenants)."""

    owner = graphene.String(required=True)
    model_version = graphene.Field(ModelVersionNode, description="The version it produced.")
    datasets = graphene.List(graphene.NonNull(DatasetNode), required=True, description="What it was trained on.")
    hyperparameters = GenericScalar(required=True)
    infrastructure = GenericScalar(required=True)

    class Meta:
        model = TrainingRun
        name = TRAINING_RUN_NODE
        interfaces = (relay.Node,)
        convert_choices_to_enum = False
        fields = (
            "id",
            "name",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "cost_usd",
            "created_at",
        )

    @classmethod
    def get_queryset(cls, queryset: QuerySet[Any], info: graphene.ResolveInfo) -> QuerySet[Any]:
        request = info.context
        tenant = resolve_tenant(request)
        if tenant is None or not has_role(request, tenant, Role.VIEWER):
            return queryset.none()
        return selectors.list_training_runs(tenant) & queryset.all()

    @staticmethod
    def resolve_owner(root: TrainingRun, info: graphene.ResolveInfo) -> str:
        return root.owner.slug

    @staticmethod
    def resolve_model_version(root: TrainingRun, info: graphene.ResolveInfo) -> ModelVersion | None:
        return loaders.version_of(info, root)

    @staticmethod
    def resolve_datasets(root: TrainingRun, info: graphene.ResolveInfo) -> list[Dataset]:
        return list(root.datasets.all())


class CatalogModelConnection(CountedConnection):
    class Meta:
        node = CatalogModelNode

    facets = GenericScalar(
        required=True,
        description="Counts of the matching models by category, model_type, license, visibility, commercial_use, "
        "tags and languages.",
    )

    @staticmethod
    def resolve_facets(root: Any, info: graphene.ResolveInfo) -> dict[str, dict[str, int]]:
        iterable = root.iterable
        return selectors.model_facets(iterable) if isinstance(iterable, QuerySet) else {}


class ModelVersionConnection(CountedConnection):
    class Meta:
        node = ModelVersionNode


class EvaluationConnection(CountedConnection):
    class Meta:
        node = EvaluationNode


class DatasetConnection(CountedConnection):
    class Meta:
        node = DatasetNode


class TrainingRunConnection(CountedConnection):
    class Meta:
        node = TrainingRunNode
