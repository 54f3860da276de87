"""Publishing models: a service identity, its versions (the published records), and validation runs."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models


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


class Protocol(models.TextChoices):
    OPENAI = "openai", "OpenAI-compatible HTTP"
    ECHO = "echo", "Built-in echo demo provider"


class AuthKind(models.TextChoices):
    NONE = "none"
    API_KEY = "api_key"
    BEARER = "bearer"


class PricingModel(models.TextChoices):
    PER_TOKEN = "per_token"
    PER_REQUEST = "per_request"
    SUBSCRIPTION = "subscription"
    FREE = "free"


class SupportLevel(models.TextChoices):
    BASIC = "basic"
    PREMIUM = "premium"
    ENTERPRISE = "enterprise"


class ComplianceLevel(models.TextChoices):
    PUBLIC = "public"
    INTERNAL = "internal"
    CONFIDENTIAL = "confidential"
    RESTRICTED = "restricted"


class Status(models.TextChoices):
    DRAFT = "draft"
    VALIDATING = "validating"
    FAILED_VALIDATION = "failed_validation"
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    REJECTED = "rejected"
    DEPRECATED = "deprecated"
    SUSPENDED = "suspended"
    RETIRED = "retired"


PRICE = {"max_digits": 20, "decimal_places": 10}


class Service(models.Model):
    """The identity of a published service: a publisher tenant and a slug; its content lives in versions."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    publisher = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="services")
    slug = models.SlugField(max_length=63)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["publisher__slug", "slug"]
        constraints = [models.UniqueConstraint(fields=["publisher", "slug"], name="publishing_service_slug_unique")]

    def __str__(self) -> str:
        return f"{self.publisher.slug}/{self.slug}"


class ServiceVersion(models.Model):
    """One version of a service with everything a consumer needs, and its lifecycle status."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="versions")
    version = models.CharField(max_length=32)
    major = models.PositiveIntegerField()
    minor = models.PositiveIntegerField()
    patch = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    description = models.TextField()
    category = models.CharField(max_length=32, choices=Category.choices)
    tags = models.JSONField(default=list, blank=True)
    capabilities = models.JSONField(default=list, blank=True)
    # Endpoint
    endpoint_url = models.URLField(max_length=500, blank=True, default="")
    protocol = models.CharField(max_length=10, choices=Protocol.choices, default=Protocol.OPENAI)
    upstream_model = models.CharField(max_length=200, blank=True, default="")
    auth_kind = models.CharField(max_length=10, choices=AuthKind.choices, default=AuthKind.NONE)
    upstream_secret_encrypted = models.TextField(blank=True, default="", editable=False)
    # Pricing (USD unless `currency` says otherwise), per 1M tokens or per request.
    pricing_model = models.CharField(max_length=20, choices=PricingModel.choices, default=PricingModel.PER_TOKEN)
    price_input_per_mtok = models.DecimalField(**PRICE, null=True, blank=True)
    price_output_per_mtok = models.DecimalField(**PRICE, null=True, blank=True)
    price_cached_input_per_mtok = models.DecimalField(**PRICE, null=True, blank=True)
    price_per_request = models.DecimalField(**PRICE, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    # SLA
    sla_availability = models.DecimalField(max_digits=6, decimal_places=3, default=Decimal("99.0"))
    sla_max_latency_ms = models.PositiveIntegerField(default=5000)
    sla_timeout_ms = models.PositiveIntegerField(default=30000)
    support_level = models.CharField(max_length=20, choices=SupportLevel.choices, default=SupportLevel.BASIC)
    # Compliance
    compliance_level = models.CharField(max_length=20, choices=ComplianceLevel.choices, default=ComplianceLevel.PUBLIC)
    certifications = models.JSONField(default=list, blank=True)
    data_residency = models.JSONField(default=list, blank=True)
    gdpr_compliant = models.BooleanField(default=False)
    hipaa_compliant = models.BooleanField(default=False)
    # Model facts
    context_length = models.PositiveIntegerField(default=4096)
    modalities = models.JSONField(default=list, blank=True)
    openapi_document = models.JSONField(null=True, blank=True)
    serves = models.JSONField(
        default=list,
        blank=True,
        help_text="Catalog models this version offers (`<owner>/<model-slug>[@<version>]`), linked when it becomes "
        "active.",
    )
    # Lifecycle
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, db_index=True)
    published_at = models.DateTimeField(null=True, blank=True)
    deprecated_at = models.DateTimeField(null=True, blank=True)
    retire_at = models.DateTimeField(null=True, blank=True, help_text="End of the deprecation grace period.")
    suspension_reason = models.CharField(max_length=500, blank=True, default="")
    review_notes = models.CharField(max_length=1000, blank=True, default="")
    search_document = models.TextField(blank=True, default="", editable=False)
    # ",tag-a,tag-b," and ",FR,DE,": portable containment filters (JSON containment is not portable to SQLite).
    tags_index = models.TextField(blank=True, default="", editable=False)
    residency_index = models.CharField(max_length=800, blank=True, default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["service", "-major", "-minor", "-patch"]
        constraints = [
            models.UniqueConstraint(fields=["service", "version"], name="publishing_version_unique"),
        ]
        indexes = [
            models.Index(fields=["status", "category"], name="publishing_status_category"),
            models.Index(fields=["service", "status"], name="publishing_service_status"),
        ]

    def __str__(self) -> str:
        return f"{self.service}@{self.version}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.search_document = " ".join([self.name, self.description, " ".join(map(str, self.tags or []))])
        self.tags_index = "," + ",".join(str(t).lower() for t in self.tags or []) + ","
        self.residency_index = "," + ",".join(str(c) for c in self.data_residency or []) + ","
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def model_id(self) -> str:
        """The consumer-facing model id of the service (`<publisher>/<service>`)."""
        return str(self.service)


class ValidationRun(models.Model):
    """One run of the publishing pipeline over a version (or a dry run, which saves nothing but its report)."""

    class Outcome(models.TextChoices):
        RUNNING = "running"
        PASSED = "passed"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    version = models.ForeignKey(ServiceVersion, on_delete=models.CASCADE, related_name="validation_runs")
    outcome = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.RUNNING)
    result_status = models.CharField(max_length=20, blank=True, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.version} ({self.outcome})"


class ValidationStep(models.Model):
    """One step of a run: name, outcome, messages (errors, warnings, violations) and duration."""

    class Outcome(models.TextChoices):
        PASSED = "passed"
        FAILED = "failed"
        SKIPPED = "skipped"

    run = models.ForeignKey(ValidationRun, on_delete=models.CASCADE, related_name="steps")
    name = models.CharField(max_length=40)
    position = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    messages = models.JSONField(default=list, blank=True)
    duration_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "position"]

    def __str__(self) -> str:
        return f"{self.name}: {self.outcome}"
