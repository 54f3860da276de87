"""Consumption models: API keys, the append-only usage ledger, its daily rollups, and SLA violations."""

from __future__ import annotations

import os
import time
import uuid
from typing import Any, TypedDict

from django.conf import settings
from django.db import models
from django.utils import timezone


class _Precision(TypedDict):
    """A DecimalField's precision, spread into its arguments."""

    max_digits: int
    decimal_places: int


COST: _Precision = {"max_digits": 20, "decimal_places": 10}
# Upper bounds (ms) of the latency histogram kept in rollups; the last bucket is open-ended.
LATENCY_BUCKETS_MS = (25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)


# Error codes of records whose upstream served the call but whose answer the response scan withheld: billed and
# counted like an answered call.
WITHHELD_BLOCKED = "response_blocked"
WITHHELD_UNSCREENED = "response_unscreened"
WITHHELD = (WITHHELD_BLOCKED, WITHHELD_UNSCREENED)


def is_counted(status_code: int, error_code: str = "") -> bool:
    """Whether a record's request counts against the tenant's quotas, as the proxy decided: answered, a stream billed
    for what it delivered (499: the client left, the stream broke, or its process died), or an answer withheld by
    the response scan."""
    return status_code < 400 or status_code == 499 or error_code in WITHHELD


class Scope(models.TextChoices):
    CONSUME = "consume", "Call models through the proxy"
    READ = "read", "Read the management API"
    PUBLISH = "publish", "Publish services and models"
    ADMIN = "admin", "Administer the tenant"


class ApiKey(models.Model):
    """A tenant's API key. Only an HMAC of the secret is stored; the secret is shown once, at creation."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.CASCADE, related_name="api_keys")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    name = models.CharField(max_length=100)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=12, editable=False)
    last4 = models.CharField(max_length=4, editable=False)
    scopes = models.JSONField(default=list)
    allowed_models = models.JSONField(default=list, blank=True, help_text="Model ids; empty = all the tenant may use.")
    routing = models.JSONField(
        default=dict,
        blank=True,
        help_text="Routing preferences of this key's calls (the `provider` object: order, only, ignore, sort, "
        "max_price, data_residency, compliance…): they narrow the tenant's; a request narrows them, never widens.",
    )
    rpm_limit = models.PositiveIntegerField("RPM limit", null=True, blank=True)
    tpm_limit = models.PositiveIntegerField("TPM limit", null=True, blank=True)
    max_parallel = models.PositiveIntegerField("max parallel requests", null=True, blank=True)
    budget_day_usd = models.DecimalField("daily budget (USD)", max_digits=20, decimal_places=6, null=True, blank=True)
    budget_month_usd = models.DecimalField(
        "monthly budget (USD)", max_digits=20, decimal_places=6, null=True, blank=True
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rotated_from = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="rotated_to"
    )
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="consumption_key_tenant")]
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def __str__(self) -> str:
        return f"{self.name} ({self.display})"

    @property
    def display(self) -> str:
        """What the UI shows instead of the secret: prefix and last four characters."""
        return f"{self.prefix}…{self.last4}"


class ApiKeyStatus:
    """A key's status now (derived from `revoked_at` and `expires_at`)."""

    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"
    CHOICES = (ACTIVE, EXPIRED, REVOKED)


def key_status(key: ApiKey) -> str:
    now = timezone.now()
    if key.revoked_at is not None and key.revoked_at <= now:
        return ApiKeyStatus.REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return ApiKeyStatus.EXPIRED
    return ApiKeyStatus.ACTIVE


def time_ordered_uuid(millis: int | None = None) -> uuid.UUID:
    """A UUID whose first 48 bits are the time in milliseconds (now, or `millis`; the layout of UUIDv7): new rows
    land at the end of the index, and an id tells nothing of how many others were made."""
    millis = time.time_ns() // 1_000_000 if millis is None else millis
    value = millis << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)


class TenantRouting(models.Model):
    """A consumer tenant's routing preferences: defaults and hard restrictions (allowed providers, residency, price
    caps) every call of its keys starts from; a key's settings and a request can narrow them, never widen."""

    tenant = models.OneToOneField(
        "tenancy.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="routing_settings"
    )
    routing = models.JSONField(default=dict, blank=True, help_text="The `provider` object's fields (see the README).")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant routing"
        verbose_name_plural = "tenant routing"

    def __str__(self) -> str:
        return f"routing of {self.tenant}"


class UsageRecord(models.Model):
    """One request that reached (or was meant for) an upstream: append-only, unique per request id. Billed tokens
    never exceed what the request admitted; what the provider reported is kept beside them (`reported_*`), and a
    claim above the bound or not a count marks the record `usage_disputed`."""

    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    request_id = models.CharField(max_length=64, unique=True)
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    publisher = models.ForeignKey("tenancy.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    service_version = models.ForeignKey(
        "publishing.ServiceVersion", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    model_id = models.CharField(max_length=200)
    endpoint = models.CharField(max_length=20)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    reported_prompt_tokens = models.BigIntegerField(
        null=True, blank=True, help_text="What the provider reported (None: nothing, or not an integer)."
    )
    reported_completion_tokens = models.BigIntegerField(null=True, blank=True)
    usage_disputed = models.BooleanField(
        default=False, help_text="The provider claimed more than the request admitted, or not a token count."
    )
    cost = models.DecimalField(**COST, default=0)
    price_snapshot = models.JSONField(default=dict)
    latency_ms = models.FloatField(default=0)
    ttft_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField()
    error_code = models.CharField(max_length=50, blank=True, default="")
    estimated = models.BooleanField(default=False)
    stream = models.BooleanField(default=False)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField()
    provider = models.CharField(
        max_length=200,
        blank=True,
        default="",
        db_default="",
        help_text="The offer that served (or was tried): publisher/service@version.",
    )
    attempt_of = models.CharField(
        max_length=64,
        blank=True,
        default="",
        db_default="",
        help_text="For a failed attempt at another offer: the request id of the call it belongs to.",
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, db_default=0, help_text="Failed attempts at other offers before this one."
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["attempt_of"], condition=~models.Q(attempt_of=""), name="consumption_usage_attempts"),
            models.Index(fields=["tenant", "-started_at"], name="consumption_usage_tenant"),
            models.Index(fields=["service_version", "-started_at"], name="consumption_usage_version"),
            models.Index(fields=["publisher", "-started_at"], name="consumption_usage_publisher"),
            models.Index(
                fields=["publisher", "-started_at"],
                condition=models.Q(usage_disputed=True),
                name="consumption_usage_disputed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.request_id} {self.model_id} {self.status_code}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Usage records are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Usage records are append-only; the retention task prunes old ones.")


class UsageRollup(models.Model):
    """Daily totals per (tenant, key, service version), kept incrementally as records are written."""

    day = models.DateField()
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    api_key = models.ForeignKey(ApiKey, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    publisher = models.ForeignKey("tenancy.Tenant", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    service_version = models.ForeignKey(
        "publishing.ServiceVersion", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    model_id = models.CharField(max_length=200)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    disputed = models.PositiveBigIntegerField(default=0, help_text="Requests whose reported usage was disputed.")
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(**COST, default=0)
    latency_sum_ms = models.FloatField(default=0)
    latency_buckets = models.JSONField(default=list, help_text="Counts per LATENCY_BUCKETS_MS bucket (+ overflow).")

    class Meta:
        ordering = ["-day"]
        constraints = [
            models.UniqueConstraint(
                fields=["day", "tenant", "api_key", "service_version"], name="consumption_rollup_unique"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "day"], name="consumption_rollup_tenant"),
            models.Index(fields=["publisher", "day"], name="consumption_rollup_publisher"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.model_id}: {self.requests} requests"


class SlaViolation(models.Model):
    """A breach of a service version's SLA found by the periodic SLA check."""

    class Severity(models.TextChoices):
        WARNING = "warning"
        CRITICAL = "critical"

    class Metric(models.TextChoices):
        LATENCY = "latency"
        ERROR_RATE = "error_rate"
        AVAILABILITY = "availability"
        USAGE_DISPUTES = "usage_disputes"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    service_version = models.ForeignKey("publishing.ServiceVersion", on_delete=models.CASCADE, related_name="+")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    severity = models.CharField(max_length=10, choices=Severity.choices)
    observed = models.FloatField()
    threshold = models.FloatField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "SLA violation"
        verbose_name_plural = "SLA violations"

    def __str__(self) -> str:
        return f"{self.service_version_id} {self.metric} {self.severity}"
