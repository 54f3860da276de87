"""Catalog models: models and their versions, datasets with provenance, training runs, evaluations, lineage."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from apps.tenancy.models import Visibility


class Category(models.TextChoices):
    TEXT_GENERATION = "text-generation"
    CHAT = "chat"
    EMBEDDINGS = "embeddings"
    CLASSIFICATION = "classification"
    SUMMARIZATION = "summarization"
    TRANSLATION = "translation"
    QUESTION_ANSWERING = "question-answering"
    CODE_GENERATION = "code-generation"
    IMAGE_GENERATION = "image-generation"
    SPEECH_TO_TEXT = "speech-to-text"
    TEXT_TO_SPEECH = "text-to-speech"
    OTHER = "other"


class ModelType(models.TextChoices):
    FINE_TUNED = "fine_tuned", "Fine-tuned"
    ADAPTER = "adapter", "Adapter (LoRA, ...)"
    FULL_MODEL = "full_model", "Full model"
    MERGED = "merged", "Merged"


class ModelStatus(models.TextChoices):
    DRAFT = "draft"
    EVALUATING = "evaluating"
    PUBLISHED = "published"
    DEPRECATED = "deprecated"
    ARCHIVED = "archived"


class VersionStatus(models.TextChoices):
    BUILDING = "building"
    EVALUATING = "evaluating"
    READY = "ready"
    FAILED = "failed"
    DEPRECATED = "deprecated"


class ArtifactFormat(models.TextChoices):
    SAFETENSORS = "safetensors"
    PYTORCH = "pytorch"
    GGUF = "gguf"
    ONNX = "onnx"
    TENSORFLOW = "tensorflow"
    TENSORRT = "tensorrt"
    OTHER = "other"


class SourceType(models.TextChoices):
    WEB_SCRAPE = "web_scrape"
    API = "api"
    MANUAL = "manual"
    SYNTHETIC = "synthetic"
    LICENSED = "licensed"
    PUBLIC_DATASET = "public_dataset"


class TrainingStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Benchmark(models.TextChoices):
    MMLU = "mmlu", "MMLU"
    HELLASWAG = "hellaswag", "HellaSwag"
    TRUTHFULQA = "truthfulqa", "TruthfulQA"
    HUMANEVAL = "humaneval", "HumanEval"
    TOXICITY = "toxicity", "Toxicity"
    BIAS = "bias", "Bias"
    ROBUSTNESS = "robustness", "Robustness"
    CUSTOM = "custom", "Custom"


class Dimension(models.TextChoices):
    """Which part of the quality score an evaluation feeds (safety scores are rates of harm: lower is better)."""

    ACCURACY = "accuracy"
    SAFETY = "safety"
    ROBUSTNESS = "robustness"
    NONE = "none", "Not scored"


class EvaluationStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class EvaluationSource(models.TextChoices):
    API = "api", "Submitted through the API"
    EVALUATOR = "evaluator", "Produced by the configured evaluator"
    ADMIN = "admin", "Entered in the admin"


class NodeKind(models.TextChoices):
    BASE_MODEL = "base_model"
    DATASET = "dataset"
    TRAINING_RUN = "training_run"
    MODEL_VERSION = "model_version"
    EVALUATION = "evaluation"


class EdgeType(models.TextChoices):
    DERIVED_FROM = "derived_from"
    TRAINED_ON = "trained_on"
    EVALUATED_BY = "evaluated_by"
    MERGED_FROM = "merged_from"
    PREPROCESSED_BY = "preprocessed_by"


def _index(values: Any) -> str:
    """ ",a,b," for portable containment filters (JSON containment is not available on SQLite)."""
    return "," + ",".join(str(v).lower() for v in values or []) + ","


class CatalogModel(models.Model):
    """A model offered in the marketplace (often fine-tuned), owned by a tenant; its content lives in versions.

    Addressed in URLs by its handle `<owner-slug>--<model-slug>`: neither slug may contain `--`, so the handle is
    unambiguous and globally unique while model slugs stay unique per owner only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="catalog_models")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63)
    description = models.TextField(blank=True, default="")
    base_model_name = models.CharField(max_length=200, blank=True, default="")
    base_model_provider = models.CharField(max_length=100, blank=True, default="")
    model_type = models.CharField(max_length=20, choices=ModelType.choices, default=ModelType.FINE_TUNED)
    architecture = models.CharField(max_length=100, blank=True, default="")
    category = models.CharField(max_length=32, choices=Category.choices, default=Category.OTHER)
    tags = models.JSONField(default=list, blank=True)
    languages = models.JSONField(default=list, blank=True, help_text="ISO 639-1 codes, e.g. en, fr.")
    license = models.CharField(max_length=64, blank=True, default="", help_text="SPDX-style id, e.g. apache-2.0.")
    commercial_use = models.BooleanField(default=False, help_text="Whether the model is offered for commercial use.")
    open_offers = models.BooleanField(
        default=False,
        help_text="Other tenants' service versions may offer (serve) this model; on by default when its license "
        "allows commercial use.",
    )
    visibility = models.CharField(max_length=20, choices=Visibility.choices, default=Visibility.PRIVATE)
    status = models.CharField(max_length=20, choices=ModelStatus.choices, default=ModelStatus.DRAFT)
    quality_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, editable=False)
    quality_breakdown = models.JSONField(default=dict, blank=True, editable=False)
    # The id as tenancy's sharing stores it (text): joins with sharing policies work on SQLite and PostgreSQL alike.
    sharing_id = models.CharField(max_length=36, editable=False, db_index=True)
    tags_index = models.TextField(blank=True, default="", editable=False)
    languages_index = models.CharField(max_length=800, blank=True, default="", editable=False)
    search_document = models.TextField(blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner__slug", "slug"]
        verbose_name = "model"
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="catalog_model_slug_unique")]
        indexes = [
            models.Index(fields=["visibility", "category"], name="catalog_model_vis_category"),
            models.Index(fields=["quality_score"], name="catalog_model_quality"),
        ]

    def __str__(self) -> str:
        return self.handle

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.sharing_id = str(self.id)
        self.tags_index = _index(self.tags)
        self.languages_index = _index(self.languages)
        self.search_document = " ".join(
            [self.name, self.slug, self.description, self.base_model_name, " ".join(map(str, self.tags or []))]
        ).lower()
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {
                *update_fields,
                "sharing_id",
                "tags_index",
                "languages_index",
                "search_document",
                "updated_at",
            }
        super().save(*args, **kwargs)

    @property
    def handle(self) -> str:
        """`<owner-slug>--<model-slug>`: the model's id in URLs."""
        return f"{self.owner.slug}--{self.slug}"


class ModelVersion(models.Model):
    """One SemVer version of a model: artifacts, changelog, status, performance figures, quality score."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model = models.ForeignKey(CatalogModel, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=64)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    prerelease = models.CharField(max_length=64, blank=True, default="")
    artifacts = models.JSONField(default=list, blank=True, help_text="[{uri, format, size_bytes, sha256}]")
    size_bytes = models.BigIntegerField(default=0, editable=False, help_text="Sum of the artifacts' sizes.")
    parameter_count = models.BigIntegerField(null=True, blank=True)
    changelog = models.TextField(blank=True, default="")
    breaking = models.BooleanField(default=False)
    status = models.CharField(max_length=20, choices=VersionStatus.choices, default=VersionStatus.BUILDING)
    p50_latency_ms = models.FloatField(null=True, blank=True)
    p95_latency_ms = models.FloatField(null=True, blank=True)
    throughput_tokens_per_s = models.FloatField(null=True, blank=True)
    quality_score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True, editable=False)
    quality_breakdown = models.JSONField(default=dict, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "-major", "-minor", "-patch", "-created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "version"], name="catalog_version_unique")]

    def __str__(self) -> str:
        return f"{self.model}@{self.version}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.size_bytes = sum(int(a.get("size_bytes") or 0) for a in self.artifacts or [] if isinstance(a, dict))
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "size_bytes", "updated_at"}
        super().save(*args, **kwargs)


class ServedBy(models.Model):
    """A published service version that serves a model version (the string foreign key keeps the apps apart)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="served_by")
    service_version = models.ForeignKey("publishing.ServiceVersion", on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        verbose_name = "served-by link"
        constraints = [
            models.UniqueConstraint(fields=["model_version", "service_version"], name="catalog_served_by_unique")
        ]

    def __str__(self) -> str:
        return f"{self.model_version} served by {self.service_version_id}"


class Dataset(models.Model):
    """A dataset with its provenance: sources, license terms, PII handling and certifications."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="catalog_datasets")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63)
    description = models.TextField(blank=True, default="")
    sources = models.JSONField(default=list, blank=True, help_text="[{type, uri, description}]")
    license = models.CharField(max_length=64, blank=True, default="")
    commercial_use = models.BooleanField(default=False, help_text="The license allows commercial use.")
    derivatives = models.BooleanField(default=False, help_text="The license allows derivative works.")
    redistribution = models.BooleanField(default=False, help_text="The license allows redistribution.")
    pii_detected = models.BooleanField(default=False)
    pii_removed = models.BooleanField(default=False)
    contains_health_data = models.BooleanField(default=False, help_text="Protected health information (HIPAA).")
    certifications = models.JSONField(default=list, blank=True, help_text="e.g. HIPAA, SOC2, ISO27001.")
    checksum_sha256 = models.CharField(max_length=64, blank=True, default="")
    size_bytes = models.BigIntegerField(null=True, blank=True)
    record_count = models.BigIntegerField(null=True, blank=True)
    visibility = models.CharField(max_length=20, choices=Visibility.choices, default=Visibility.PRIVATE)
    sharing_id = models.CharField(max_length=36, editable=False, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["owner__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["owner", "slug"], name="catalog_dataset_slug_unique")]

    def __str__(self) -> str:
        return self.handle

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.sharing_id = str(self.id)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None:
            kwargs["update_fields"] = {*update_fields, "sharing_id", "updated_at"}
        super().save(*args, **kwargs)

    @property
    def handle(self) -> str:
        return f"{self.owner.slug}--{self.slug}"


class TrainingRun(models.Model):
    """A training run: datasets in, model version out, hyper-parameters, infrastructure, duration and cost."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="catalog_training_runs")
    name = models.CharField(max_length=200)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="training_runs"
    )
    datasets = models.ManyToManyField(Dataset, blank=True, related_name="training_runs")
    hyperparameters = models.JSONField(default=dict, blank=True)
    infrastructure = models.JSONField(default=dict, blank=True, help_text="e.g. {gpu_type, gpu_count, provider}")
    status = models.CharField(max_length=20, choices=TrainingStatus.choices, default=TrainingStatus.QUEUED)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"


class Evaluation(models.Model):
    """A benchmark result of a model version. `score` is on a 0-100 scale (never a 0-1 fraction)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    benchmark = models.CharField(max_length=20, choices=Benchmark.choices)
    benchmark_name = models.CharField(max_length=100, help_text="The benchmark, or the custom benchmark's name.")
    benchmark_version = models.CharField(max_length=50, blank=True, default="")
    dimension = models.CharField(max_length=20, choices=Dimension.choices)
    score = models.DecimalField(max_digits=6, decimal_places=3, null=True, blank=True)
    scores = models.JSONField(default=dict, blank=True, help_text="Raw metrics, e.g. {acc: 71.2, acc_norm: 73.0}.")
    status = models.CharField(max_length=20, choices=EvaluationStatus.choices, default=EvaluationStatus.PENDING)
    source = models.CharField(max_length=20, choices=EvaluationSource.choices, default=EvaluationSource.API)
    error = models.CharField(max_length=1000, blank=True, default="")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "benchmark_name", "benchmark_version"], name="catalog_evaluation_unique"
            ),
            models.CheckConstraint(
                condition=Q(score__isnull=True) | (Q(score__gte=0) & Q(score__lte=100)),
                name="catalog_evaluation_score_0_100",
            ),
        ]
        indexes = [models.Index(fields=["benchmark_name", "status"], name="catalog_eval_benchmark")]

    def __str__(self) -> str:
        suffix = f" {self.benchmark_version}" if self.benchmark_version else ""
        return f"{self.benchmark_name}{suffix} of {self.model_version}"


class LineageGraph(models.Model):
    """The lineage graph of one tenant; its row is locked while an edge is added, so inserts never race a cycle."""

    owner = models.OneToOneField("tenancy.Tenant", on_delete=models.CASCADE, related_name="lineage_graph")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"lineage of {self.owner_id}"


class LineageNode(models.Model):
    """A node of a lineage graph: a base model (by name) or one of the owner's datasets, runs, versions, evaluations.

    `ref` is the referenced object's id (the base model's name for base models); a node whose object is gone is
    reported as dangling by `validate_lineage`."""

    id = models.BigAutoField(primary_key=True)
    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    graph = models.ForeignKey(LineageGraph, on_delete=models.CASCADE, related_name="nodes")
    kind = models.CharField(max_length=20, choices=NodeKind.choices)
    ref = models.CharField(max_length=255)
    label = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["graph", "kind", "ref"], name="catalog_node_unique")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.label}"


class LineageEdge(models.Model):
    """`source` —type→ `target`, read "source <type> target" (a version trained_on a dataset); acyclic."""

    id = models.BigAutoField(primary_key=True)
    graph = models.ForeignKey(LineageGraph, on_delete=models.CASCADE, related_name="edges")
    source = models.ForeignKey(LineageNode, on_delete=models.CASCADE, related_name="out_edges")
    target = models.ForeignKey(LineageNode, on_delete=models.CASCADE, related_name="in_edges")
    edge_type = models.CharField(max_length=20, choices=EdgeType.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "target", "edge_type"], name="catalog_edge_unique"),
            models.CheckConstraint(condition=~Q(source=F("target")), name="catalog_edge_no_self_loop"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.edge_type} {self.target}"
