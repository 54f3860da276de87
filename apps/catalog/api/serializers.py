"""Serializers of the catalog REST API: read shapes, and the documented shapes of request bodies.

Request bodies are validated by the catalog services (one set of rules for the API, the admin and every other
caller), which name each bad field by its path (`artifacts[1].sha256`); the input serializers here document them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.catalog import selectors
from apps.catalog.models import (
    ArtifactFormat,
    Benchmark,
    CatalogModel,
    Category,
    Dataset,
    Dimension,
    EdgeType,
    Evaluation,
    EvaluationStatus,
    ModelStatus,
    ModelType,
    ModelVersion,
    NodeKind,
    ServedBy,
    SourceType,
    TrainingRun,
    TrainingStatus,
    VersionStatus,
)
from apps.tenancy.api.serializers import PlainDecimalField
from apps.tenancy.models import Visibility
from llm_infra_django.drf.fields import ListFilterField


def inline_choice(choices: Any, **kwargs: Any) -> serializers.ChoiceField:
    """A choice field documented with an inline enum (wrapped in `allOf`, so drf-spectacular does not turn it into
    a named component): several catalog fields share a name ("status", "kind", "type") with different value sets
    used in several components, and named enum components would collide."""
    values = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in choices]

    @extend_schema_field(
        {"allOf": [{"type": "string", "enum": values}], "description": f"One of: {', '.join(values)}."}
    )
    class InlineChoiceField(serializers.ChoiceField):
        pass

    return InlineChoiceField(choices=choices, **kwargs)


# --- Models --------------------------------------------------------------------------------------------------


class CatalogModelSerializer(serializers.ModelSerializer):
    handle = serializers.CharField(read_only=True, help_text="`<owner>--<slug>`: the model's id in URLs.")
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    quality_score = PlainDecimalField(allow_null=True, help_text="0-100; null until something is measured.")
    quality_breakdown = serializers.JSONField(read_only=True, help_text="Parts, applied weights and version.")
    latest_version = serializers.SerializerMethodField(help_text="Greatest ready release (pre-releases excluded).")
    status = inline_choice(choices=ModelStatus.choices, read_only=True)

    class Meta:
        model = CatalogModel
        fields = [
            "handle",
            "id",
            "owner",
            "slug",
            "name",
            "description",
            "base_model_name",
            "base_model_provider",
            "model_type",
            "architecture",
            "category",
            "tags",
            "languages",
            "license",
            "commercial_use",
            "open_offers",
            "visibility",
            "status",
            "quality_score",
            "quality_breakdown",
            "latest_version",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_latest_version(self, model: CatalogModel) -> str | None:
        latest = selectors.latest_version(model.versions.all())
        return latest.version if latest else None


class ModelWriteSerializer(serializers.Serializer):
    """Fields a model's admins set (all optional on update)."""

    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    base_model_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    base_model_provider = serializers.CharField(max_length=100, required=False, allow_blank=True)
    model_type = serializers.ChoiceField(choices=ModelType.choices, required=False)
    architecture = serializers.CharField(max_length=100, required=False, allow_blank=True)
    category = serializers.ChoiceField(choices=Category.choices, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), max_length=20, required=False)
    languages = serializers.ListField(
        child=serializers.CharField(max_length=2), required=False, help_text="ISO 639-1 codes."
    )
    license = serializers.CharField(max_length=64, required=False, allow_blank=True, help_text="e.g. apache-2.0")
    commercial_use = serializers.BooleanField(
        required=False, help_text="Defaults from a known license (apache-2.0: true, cc-by-nc-4.0: false)."
    )
    open_offers = serializers.BooleanField(
        required=False,
        help_text="Other tenants' service versions may offer (serve) the model; on by default when its license "
        "allows commercial use.",
    )
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class ModelCreateSerializer(ModelWriteSerializer):
    slug = serializers.CharField(max_length=63, help_text="Unique within the owner; lower-case, single hyphens.")
    name = serializers.CharField(max_length=200)


class ModelUpdateSerializer(ModelWriteSerializer):
    status = inline_choice(
        choices=ModelStatus.choices,
        required=False,
        help_text="draft → evaluating → published (needs a ready version) → deprecated → archived (final).",
    )


# --- Versions ------------------------------------------------------------------------------------------------


class ModelArtifactSerializer(serializers.Serializer):
    uri = serializers.CharField(help_text="s3://, gs://, az://, https://, hf://, oci:// or file:// URI.")
    format = serializers.ChoiceField(choices=ArtifactFormat.choices)
    size_bytes = serializers.IntegerField(min_value=0)
    sha256 = serializers.CharField(min_length=64, max_length=64, help_text="64 hexadecimal characters.")


class ServedBySerializer(serializers.ModelSerializer):
    service_version = serializers.UUIDField(source="service_version_id", read_only=True)
    model_id = serializers.SerializerMethodField(help_text="The consumer-facing model id of the service version.")
    status = serializers.SerializerMethodField()

    class Meta:
        model = ServedBy
        fields = ["service_version", "model_id", "status"]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_model_id(self, link: ServedBy) -> str:
        return str(link.service_version)

    @extend_schema_field(OpenApiTypes.STR)
    def get_status(self, link: ServedBy) -> str:
        return str(link.service_version.status)


class ModelVersionSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="The model's handle.")
    artifacts = ModelArtifactSerializer(many=True, read_only=True)
    quality_score = PlainDecimalField(allow_null=True)
    quality_breakdown = serializers.JSONField(read_only=True)
    served_by = ServedBySerializer(many=True, read_only=True)
    status = inline_choice(choices=VersionStatus.choices, read_only=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "model",
            "version",
            "status",
            "artifacts",
            "size_bytes",
            "parameter_count",
            "changelog",
            "breaking",
            "p50_latency_ms",
            "p95_latency_ms",
            "throughput_tokens_per_s",
            "quality_score",
            "quality_breakdown",
            "served_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_model(self, version: ModelVersion) -> str:
        return version.model.handle


class VersionWriteSerializer(serializers.Serializer):
    artifacts = ModelArtifactSerializer(many=True, required=False, help_text="Changeable only while building.")
    parameter_count = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    changelog = serializers.CharField(required=False, allow_blank=True)
    breaking = serializers.BooleanField(required=False)
    status = inline_choice(
        choices=VersionStatus.choices,
        required=False,
        help_text="building → evaluating → ready (needs an artifact) → deprecated; failed → building.",
    )
    p50_latency_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    p95_latency_ms = serializers.FloatField(min_value=0, required=False, allow_null=True)
    throughput_tokens_per_s = serializers.FloatField(min_value=0, required=False, allow_null=True)
    served_by = serializers.ListField(
        child=serializers.UUIDField(), required=False, help_text="Ids of the owner's service versions serving it."
    )


class VersionCreateSerializer(VersionWriteSerializer):
    version = serializers.CharField(help_text="SemVer, greater than every existing version (e.g. 1.2.0, 2.0.0-rc.1).")


# --- Datasets and training runs ------------------------------------------------------------------------------


class DatasetSourceSerializer(serializers.Serializer):
    type = inline_choice(choices=SourceType.choices)
    uri = serializers.CharField(required=False, allow_blank=True)
    description = serializers.CharField(required=False, allow_blank=True)


class DatasetSerializer(serializers.ModelSerializer):
    handle = serializers.CharField(read_only=True)
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    sources = DatasetSourceSerializer(many=True, read_only=True)

    class Meta:
        model = Dataset
        fields = [
            "handle",
            "id",
            "owner",
            "slug",
            "name",
            "description",
            "sources",
            "license",
            "commercial_use",
            "derivatives",
            "redistribution",
            "pii_detected",
            "pii_removed",
            "contains_health_data",
            "certifications",
            "checksum_sha256",
            "size_bytes",
            "record_count",
            "visibility",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class DatasetWriteSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    sources = DatasetSourceSerializer(many=True, required=False)
    license = serializers.CharField(max_length=64, required=False, allow_blank=True)
    commercial_use = serializers.BooleanField(required=False, help_text="Defaults from a known license.")
    derivatives = serializers.BooleanField(required=False)
    redistribution = serializers.BooleanField(required=False)
    pii_detected = serializers.BooleanField(required=False)
    pii_removed = serializers.BooleanField(required=False)
    contains_health_data = serializers.BooleanField(required=False, help_text="Protected health information.")
    certifications = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    checksum_sha256 = serializers.CharField(required=False, allow_blank=True, help_text="64 hexadecimal characters.")
    size_bytes = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    record_count = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)


class DatasetCreateSerializer(DatasetWriteSerializer):
    slug = serializers.CharField(max_length=63)
    name = serializers.CharField(max_length=200)


class TrainingRunSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model_version = serializers.SerializerMethodField(help_text="`handle@version` of the version it produced.")
    datasets = serializers.SerializerMethodField(help_text="Handles of the datasets it was trained on.")
    cost_usd = PlainDecimalField(allow_null=True)
    status = inline_choice(choices=TrainingStatus.choices, read_only=True)

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "owner",
            "name",
            "model_version",
            "datasets",
            "hyperparameters",
            "infrastructure",
            "status",
            "started_at",
            "finished_at",
            "duration_seconds",
            "cost_usd",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_datasets(self, run: TrainingRun) -> list[str]:
        return [dataset.handle for dataset in run.datasets.all()]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_model_version(self, run: TrainingRun) -> str | None:
        version = run.model_version
        return f"{version.model.handle}@{version.version}" if version else None


class TrainingRunCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    datasets = serializers.ListField(child=serializers.CharField(), required=False, help_text="Ids or handles.")
    model_version = serializers.CharField(required=False, help_text="Id or `handle@version` of what it produced.")
    hyperparameters = serializers.JSONField(required=False)
    infrastructure = serializers.JSONField(required=False)
    status = inline_choice(choices=TrainingStatus.choices, required=False)
    started_at = serializers.DateTimeField(required=False, allow_null=True)
    finished_at = serializers.DateTimeField(required=False, allow_null=True)
    duration_seconds = serializers.FloatField(min_value=0, required=False, allow_null=True)
    cost_usd = serializers.DecimalField(max_digits=20, decimal_places=6, required=False, allow_null=True)


# --- Evaluations ---------------------------------------------------------------------------------------------


class EvaluationSerializer(serializers.ModelSerializer):
    model = serializers.SerializerMethodField(help_text="The model's handle.")
    version = serializers.SerializerMethodField()
    score = PlainDecimalField(allow_null=True, help_text="0-100.")
    status = inline_choice(choices=EvaluationStatus.choices, read_only=True)

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "model",
            "version",
            "benchmark",
            "benchmark_name",
            "benchmark_version",
            "dimension",
            "score",
            "scores",
            "status",
            "source",
            "error",
            "completed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_model(self, evaluation: Evaluation) -> str:
        return evaluation.model_version.model.handle

    @extend_schema_field(OpenApiTypes.STR)
    def get_version(self, evaluation: Evaluation) -> str:
        return evaluation.model_version.version


class EvaluationCreateSerializer(serializers.Serializer):
    model = serializers.CharField(help_text="Handle of the model (`owner--slug`).")
    version = serializers.CharField()
    benchmark = serializers.ChoiceField(choices=Benchmark.choices)
    name = serializers.CharField(max_length=100, required=False, help_text="Custom benchmarks only.")
    benchmark_version = serializers.CharField(max_length=50, required=False, allow_blank=True)
    dimension = serializers.ChoiceField(
        choices=Dimension.choices, required=False, help_text="Custom benchmarks only (default accuracy)."
    )
    score = serializers.FloatField(
        min_value=0, max_value=100, required=False, help_text="0-100 (a percentage, never a 0-1 fraction)."
    )
    scores = serializers.DictField(child=serializers.FloatField(), required=False, help_text="Raw metrics.")
    status = inline_choice(
        choices=[(EvaluationStatus.COMPLETED, "Completed"), (EvaluationStatus.FAILED, "Failed")],
        required=False,
        help_text="completed (default with a score) or failed (with `error`).",
    )
    error = serializers.CharField(max_length=1000, required=False, allow_blank=True)
    run = serializers.BooleanField(
        required=False, help_text="Ask the configured evaluator to run it (no score given); 400 when none is set."
    )


class EvaluationUpdateSerializer(serializers.Serializer):
    score = serializers.FloatField(min_value=0, max_value=100, required=False, allow_null=True)
    scores = serializers.DictField(child=serializers.FloatField(), required=False)
    status = inline_choice(
        choices=[(EvaluationStatus.COMPLETED, "Completed"), (EvaluationStatus.FAILED, "Failed")], required=False
    )
    error = serializers.CharField(max_length=1000, required=False, allow_blank=True)


# --- Search, lineage, leaderboard, comparison, compliance ----------------------------------------------------


class ModelSearchSerializer(serializers.Serializer):
    """Query parameters of the model list (every one optional; tags and languages: all must match)."""

    q = serializers.CharField(required=False, max_length=200, help_text="Words found in name, description or tags.")
    category = serializers.ChoiceField(choices=Category.choices, required=False)
    model_type = serializers.ChoiceField(choices=ModelType.choices, required=False)
    tags = ListFilterField(child=serializers.CharField(), required=False, help_text="Comma-separated; all must match.")
    languages = ListFilterField(
        child=serializers.CharField(), required=False, help_text="Comma-separated ISO 639-1 codes; all must match."
    )
    license = serializers.CharField(required=False, max_length=64)
    min_quality = serializers.DecimalField(max_digits=5, decimal_places=2, min_value=0, max_value=100, required=False)
    commercial_use = serializers.BooleanField(required=False, allow_null=True, default=None)
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    status = inline_choice(choices=ModelStatus.choices, required=False)
    owner = serializers.CharField(required=False, max_length=63, help_text="Owner tenant's slug.")
    ordering = serializers.ChoiceField(choices=list(selectors.ORDERINGS), required=False, default="-quality")

    def filters(self) -> selectors.ModelFilters:
        data: dict[str, Any] = dict(self.validated_data)
        data["tags"] = tuple(tag.lower() for tag in data.get("tags", ()))
        data["languages"] = tuple(language.lower() for language in data.get("languages", ()))
        return selectors.ModelFilters(**data)


class ModelFacetsSerializer(serializers.Serializer):
    category = serializers.DictField(child=serializers.IntegerField())
    model_type = serializers.DictField(child=serializers.IntegerField())
    license = serializers.DictField(child=serializers.IntegerField())
    visibility = serializers.DictField(child=serializers.IntegerField())
    commercial_use = serializers.DictField(child=serializers.IntegerField())
    tags = serializers.DictField(child=serializers.IntegerField(), help_text="The 50 most frequent.")
    languages = serializers.DictField(child=serializers.IntegerField())


class LineageQuerySerializer(serializers.Serializer):
    depth = serializers.IntegerField(
        required=False, min_value=0, help_text="Edges to follow each way (default 5, at most the configured maximum)."
    )
    version = serializers.CharField(required=False, help_text="Only this version's lineage (default: all versions).")


class LineageNodeSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    kind = inline_choice(choices=NodeKind.choices)
    label = serializers.CharField()
    ref = serializers.CharField(help_text="Id of the object (the name for base models).")
    relation = inline_choice(choices=["self", "ancestor", "descendant"])
    depth = serializers.IntegerField()
    layer = serializers.IntegerField(help_text="Row of the drawing, 0 at the top (the oldest ancestors).")
    order = serializers.IntegerField(help_text="Position in the row.")
    x = serializers.IntegerField(help_text="Left of the node's box, in pixels.")
    y = serializers.IntegerField(help_text="Top of the node's box, in pixels.")


class LineageEdgeSerializer(serializers.Serializer):
    source = serializers.UUIDField(help_text="The derived node.")
    target = serializers.UUIDField(help_text="What it derives from.")
    type = inline_choice(choices=EdgeType.choices)
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField(), min_length=2, max_length=2),
        required=False,
        help_text="Bends [x, y] of the drawn edge, from the derived node, for edges crossing layers (else empty).",
    )


class LineageSerializer(serializers.Serializer):
    model = serializers.CharField()
    version = serializers.CharField(allow_null=True)
    depth = serializers.IntegerField()
    width = serializers.IntegerField(help_text="Size of the drawing in pixels.")
    height = serializers.IntegerField()
    nodes = LineageNodeSerializer(many=True)
    edges = LineageEdgeSerializer(many=True)


class LineageNodeRefSerializer(serializers.Serializer):
    kind = inline_choice(choices=NodeKind.choices)
    ref = serializers.CharField(
        help_text="Id of the owner's object (a version also as `handle@version`, a dataset as its handle); the "
        "name of a base model."
    )


class LineageEdgeCreateSerializer(serializers.Serializer):
    source = LineageNodeRefSerializer(help_text="The derived node.")
    target = LineageNodeRefSerializer(help_text="What it derives from.")
    type = inline_choice(choices=EdgeType.choices)


class LeaderboardQuerySerializer(serializers.Serializer):
    benchmark = serializers.CharField(
        required=False, max_length=100, help_text="Benchmark name (mmlu, humaneval, a custom name); none: quality."
    )
    benchmark_version = serializers.CharField(required=False, max_length=50)
    category = serializers.ChoiceField(choices=Category.choices, required=False)


class LeaderboardRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="Equal scores share a rank (1, 2, 2, 4), listed by handle.")
    model = serializers.CharField(help_text="The model's handle.")
    name = serializers.CharField()
    owner = serializers.CharField()
    version = serializers.CharField(allow_null=True, help_text="The version the score belongs to.")
    score = PlainDecimalField()
    benchmark = serializers.CharField(allow_null=True)
    benchmark_version = serializers.CharField(allow_null=True)
    evaluated_at = serializers.DateTimeField(allow_null=True)


class CompareQuerySerializer(serializers.Serializer):
    a = serializers.CharField(help_text="The version compared from.")
    b = serializers.CharField(help_text="The version compared to (deltas are b − a).")


class VersionFactsSerializer(serializers.Serializer):
    version = serializers.CharField()
    status = inline_choice(choices=VersionStatus.choices)
    size_bytes = serializers.IntegerField()
    parameter_count = serializers.IntegerField(allow_null=True)
    p50_latency_ms = serializers.FloatField(allow_null=True)
    p95_latency_ms = serializers.FloatField(allow_null=True)
    throughput_tokens_per_s = serializers.FloatField(allow_null=True)
    quality_score = PlainDecimalField(allow_null=True)


class VersionDeltasSerializer(serializers.Serializer):
    size_bytes = serializers.IntegerField(allow_null=True)
    parameter_count = serializers.IntegerField(allow_null=True)
    p50_latency_ms = serializers.FloatField(allow_null=True)
    p95_latency_ms = serializers.FloatField(allow_null=True)
    throughput_tokens_per_s = serializers.FloatField(allow_null=True)
    quality_score = PlainDecimalField(allow_null=True)


class VersionBenchmarkDeltaSerializer(serializers.Serializer):
    benchmark = serializers.CharField()
    benchmark_version = serializers.CharField()
    a = PlainDecimalField(allow_null=True)
    b = PlainDecimalField(allow_null=True)
    delta = PlainDecimalField(allow_null=True, help_text="b − a; null when either is missing.")


class VersionComparisonSerializer(serializers.Serializer):
    model = serializers.CharField()
    a = VersionFactsSerializer()
    b = VersionFactsSerializer()
    deltas = VersionDeltasSerializer(help_text="b − a; null when either is missing.")
    benchmarks = VersionBenchmarkDeltaSerializer(many=True)


class ComplianceFindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    regulation = serializers.CharField()
    severity = serializers.CharField()
    message = serializers.CharField()
    dataset = serializers.CharField(allow_null=True)


class ModelComplianceSerializer(serializers.Serializer):
    model = serializers.CharField()
    compliant = serializers.BooleanField()
    datasets = serializers.ListField(child=serializers.CharField(), help_text="Datasets found in the lineage.")
    violations = ComplianceFindingSerializer(many=True)
    warnings = ComplianceFindingSerializer(many=True)


class EvaluationQuerySerializer(serializers.Serializer):
    model = serializers.CharField(required=False, help_text="A model's handle.")
    version = serializers.CharField(required=False, help_text="With `model`: one version.")
    benchmark = serializers.CharField(required=False, max_length=100, help_text="Benchmark name.")
    status = inline_choice(choices=EvaluationStatus.choices, required=False)


class DatasetQuerySerializer(serializers.Serializer):
    owner = serializers.CharField(required=False, max_length=63, help_text="Owner tenant's slug.")
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    license = serializers.CharField(required=False, max_length=64)
    commercial_use = serializers.BooleanField(required=False, allow_null=True, default=None)
