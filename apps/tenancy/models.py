"""Tenancy models: tenants, members, tier limits, quota overrides and usage, sharing, and the audit log."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q


class Tier(models.TextChoices):
    FREE = "free", "Free"
    STARTER = "starter", "Starter"
    PROFESSIONAL = "professional", "Professional"
    ENTERPRISE = "enterprise", "Enterprise"


TIER_ORDER = [Tier.FREE, Tier.STARTER, Tier.PROFESSIONAL, Tier.ENTERPRISE]


class TenantStatus(models.TextChoices):
    TRIAL = "trial", "Trial"
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"
    DEACTIVATED = "deactivated", "Deactivated"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class QuotaType(models.TextChoices):
    API_REQUESTS = "api_requests", "API requests"
    TOKENS = "tokens", "Tokens"
    SPEND_USD = "spend_usd", "Spend (USD)"
    MEMBERS = "members", "Members"
    SERVICES_PUBLISHED = "services_published", "Services published"
    API_KEYS = "api_keys", "API keys"


class QuotaPeriod(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"
    MONTH = "month", "Month"
    NONE = "none", "No period (a count of current objects)"


class QuotaAction(models.TextChoices):
    BLOCK = "block", "Block"
    THROTTLE = "throttle", "Throttle"
    ALERT = "alert", "Alert"


UNLIMITED = Decimal(-1)


class Tenant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=63, unique=True)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.FREE)
    status = models.CharField(max_length=20, choices=TenantStatus.choices, default=TenantStatus.TRIAL)
    region = models.CharField(max_length=32, blank=True, default="")
    timezone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(max_length=3, default="USD")
    trial_ends_at = models.DateTimeField(null=True, blank=True)
    trusted_publisher = models.BooleanField(
        default=False, help_text="Services of a trusted publisher can go live without manual approval."
    )
    suspension_reason = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    @property
    def is_operational(self) -> bool:
        """Trial and active tenants can work; suspended and deactivated ones cannot."""
        return self.status in (TenantStatus.TRIAL, TenantStatus.ACTIVE)


class Membership(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant__slug", "created_at"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="tenancy_membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.role})"


class TierQuota(models.Model):
    """Default limit of one quota for one tier (the SPEC's tier table, kept as data)."""

    tier = models.CharField(max_length=20, choices=Tier.choices)
    quota_type = models.CharField(max_length=32, choices=QuotaType.choices)
    period = models.CharField(max_length=10, choices=QuotaPeriod.choices)
    limit = models.DecimalField(max_digits=24, decimal_places=6, help_text="-1 means unlimited.")
    action = models.CharField(max_length=10, choices=QuotaAction.choices)

    class Meta:
        ordering = ["tier", "quota_type"]
        constraints = [models.UniqueConstraint(fields=["tier", "quota_type"], name="tenancy_tierquota_unique")]

    def __str__(self) -> str:
        return f"{self.tier}:{self.quota_type}"


class QuotaOverride(models.Model):
    """A tenant-specific limit (and optionally action) replacing the tier default."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quota_overrides")
    quota_type = models.CharField(max_length=32, choices=QuotaType.choices)
    limit = models.DecimalField(max_digits=24, decimal_places=6, help_text="-1 means unlimited.")
    action = models.CharField(max_length=10, choices=QuotaAction.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "quota_type"], name="tenancy_override_unique")]

    def __str__(self) -> str:
        return f"{self.tenant}:{self.quota_type}={self.limit}"


class QuotaUsage(models.Model):
    """Durable usage counter of one metered quota for one period (integer units; spend in 10⁻¹⁰ USD, see money.py)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="quota_usage")
    quota_type = models.CharField(max_length=32, choices=QuotaType.choices)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    used = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "quota_type", "period_start"], name="tenancy_usage_unique")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}:{self.quota_type}@{self.period_start:%Y-%m-%d %H:%M}={self.used}"


class Visibility(models.TextChoices):
    PRIVATE = "private", "Private (owner only)"
    TENANT = "tenant", "Listed tenants only"
    MARKETPLACE = "marketplace", "Marketplace (registered tenants)"
    PUBLIC = "public", "Public"


class SharingPolicy(models.Model):
    """How a provider shares one resource (a service or a model) with consumer tenants."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="sharing_policies")
    resource_type = models.CharField(max_length=32)
    resource_id = models.CharField(max_length=64)
    visibility = models.CharField(max_length=20, choices=Visibility.choices, default=Visibility.PRIVATE)
    allowed_tenants = models.ManyToManyField(Tenant, blank=True, related_name="+")
    blocked_tenants = models.ManyToManyField(Tenant, blank=True, related_name="+")
    tier_minimum = models.CharField(max_length=20, choices=Tier.choices, blank=True, default="")
    regions = models.JSONField(default=list, blank=True, help_text="Consumer regions allowed; empty = any.")
    max_cost_per_month = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    requires_approval = models.BooleanField(default=True)
    max_consumers = models.PositiveIntegerField(null=True, blank=True, help_text="Empty = unlimited.")
    provider_share_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("80.00"))
    platform_fee_percent = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("20.00"))
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "sharing policies"
        constraints = [
            models.UniqueConstraint(fields=["resource_type", "resource_id"], name="tenancy_policy_resource_unique")
        ]

    def __str__(self) -> str:
        return f"{self.resource_type}:{self.resource_id} ({self.visibility})"


class AccessRequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    CANCELLED = "cancelled", "Cancelled"


class AccessRequest(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(SharingPolicy, on_delete=models.CASCADE, related_name="requests")
    consumer = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="access_requests")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    message = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=20, choices=AccessRequestStatus.choices, default=AccessRequestStatus.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.CharField(max_length=1000, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "consumer"],
                condition=Q(status="pending"),
                name="tenancy_request_one_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.consumer} → {self.policy} ({self.status})"


class GrantStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"


class Grant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(SharingPolicy, on_delete=models.CASCADE, related_name="grants")
    consumer = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="grants")
    request = models.OneToOneField(
        AccessRequest, on_delete=models.SET_NULL, null=True, blank=True, related_name="grant"
    )
    status = models.CharField(max_length=20, choices=GrantStatus.choices, default=GrantStatus.ACTIVE)
    granted_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-granted_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["policy", "consumer"], condition=Q(status="active"), name="tenancy_grant_one_active"
            )
        ]

    def __str__(self) -> str:
        return f"{self.consumer} ⇐ {self.policy} ({self.status})"


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk updates and deletes are refused: audit entries are never changed."""

    def update(self, **kwargs: Any) -> int:
        raise PermissionError("Audit log entries are append-only.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit log entries are append-only.")


class AuditLog(models.Model):
    """Append-only record of a state change: who, in which tenant, did what to which object, before and after."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(
        Tenant, on_delete=models.DO_NOTHING, null=True, blank=True, related_name="+", db_constraint=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        null=True,
        blank=True,
        related_name="+",
        db_constraint=False,
    )
    actor_label = models.CharField(max_length=200, blank=True, default="")
    action = models.CharField(max_length=100, db_index=True)
    object_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=100, blank=True, default="")
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    request_id = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="tenancy_audit_tenant_time")]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.action} {self.object_type}:{self.object_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Audit log entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Audit log entries are append-only.")
