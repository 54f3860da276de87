"""Serializers of the tenancy REST API: read shapes of the models, strict input shapes of the service calls."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.tenancy import selectors
from apps.tenancy.models import (
    AccessRequest,
    AuditLog,
    Grant,
    Membership,
    QuotaAction,
    QuotaPeriod,
    QuotaType,
    Role,
    SharingPolicy,
    Tenant,
    Tier,
    Visibility,
)

MAX_INT32 = 2_147_483_647
# The tiers as conditions ("starter or above"): labelled apart so the schema names this choice set on its own.
TIER_MINIMUM_CHOICES = [(value, f"{label} or above") for value, label in Tier.choices]


# --- Shared --------------------------------------------------------------------------------------------------


class PlainDecimalField(serializers.DecimalField):
    """A decimal written as a string without trailing zeros ("10000", "0.5", "-1" for unlimited)."""

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


class InputSerializer(serializers.Serializer):
    """Input of a service call: unknown fields are refused (400 naming them) rather than silently ignored."""

    unknown_field_message = "Unknown field."

    def to_internal_value(self, data: Any) -> Any:
        unknown: dict[str, list[str]] = {}
        if isinstance(data, Mapping):
            unknown = {str(name): [self.unknown_field_message] for name in data if name not in self.fields}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise serializers.ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise serializers.ValidationError(unknown)
        return value


# --- Tenants -------------------------------------------------------------------------------------------------


class TenantSerializer(serializers.ModelSerializer):
    member_count = serializers.SerializerMethodField()
    role = serializers.SerializerMethodField(help_text="The caller's role in the tenant (null for platform staff).")

    class Meta:
        model = Tenant
        fields = [
            "id",
            "slug",
            "name",
            "tier",
            "status",
            "region",
            "timezone",
            "currency",
            "trial_ends_at",
            "suspension_reason",
            "trusted_publisher",
            "member_count",
            "role",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.INT)
    def get_member_count(self, tenant: Tenant) -> int:
        annotated = getattr(tenant, "member_count", None)
        return annotated if annotated is not None else tenant.memberships.count()

    @extend_schema_field(serializers.ChoiceField(choices=Role.choices, allow_null=True))
    def get_role(self, tenant: Tenant) -> str | None:
        return selectors.get_role(tenant, self.context["request"].user)


class TenantCreateSerializer(InputSerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.CharField(
        max_length=63, help_text="3-63 lower-case letters, digits and single hyphens; unique; used in URLs."
    )
    tier = serializers.ChoiceField(choices=Tier.choices, required=False)
    region = serializers.CharField(max_length=32, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False, help_text="IANA name, e.g. Europe/Paris.")
    currency = serializers.CharField(max_length=3, required=False, help_text="ISO-4217 code, e.g. USD.")


class TenantUpdateSerializer(InputSerializer):
    unknown_field_message = "This field cannot be changed here."

    name = serializers.CharField(max_length=200, required=False)
    region = serializers.CharField(max_length=32, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False)
    currency = serializers.CharField(max_length=3, required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError({"non_field_errors": ["Give at least one of: " + ", ".join(self.fields)]})
        return attrs


class TierChangeSerializer(InputSerializer):
    tier = serializers.ChoiceField(choices=Tier.choices)


class SuspendSerializer(InputSerializer):
    reason = serializers.CharField(max_length=500)


# --- Members -------------------------------------------------------------------------------------------------


class MemberUserSerializer(serializers.Serializer):
    username = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)


class MembershipSerializer(serializers.ModelSerializer):
    user = MemberUserSerializer(read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]
        read_only_fields = fields


class MemberCreateSerializer(InputSerializer):
    username = serializers.CharField(max_length=150, required=False)
    email = serializers.EmailField(required=False)
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs.get("username") and not attrs.get("email"):
            raise serializers.ValidationError({"username": ["Give a username or an email."]})
        return attrs


class MemberUpdateSerializer(InputSerializer):
    role = serializers.ChoiceField(choices=Role.choices)


# --- Quotas and usage ----------------------------------------------------------------------------------------


class QuotaStatusSerializer(serializers.Serializer):
    quota_type = serializers.ChoiceField(choices=QuotaType.choices, read_only=True)
    period = serializers.ChoiceField(choices=QuotaPeriod.choices, read_only=True)
    limit = PlainDecimalField(help_text="-1 means unlimited.")
    action = serializers.ChoiceField(choices=QuotaAction.choices, read_only=True)
    used = PlainDecimalField()
    remaining = PlainDecimalField(allow_null=True, help_text="Null when unlimited.")
    percentage = serializers.FloatField(allow_null=True, read_only=True)
    resets_at = serializers.DateTimeField(allow_null=True, read_only=True, help_text="Null for count quotas.")
    soft_limit_reached = serializers.BooleanField(read_only=True)


class QuotaOverrideSerializer(InputSerializer):
    limit = serializers.DecimalField(max_digits=24, decimal_places=6, help_text="A number ≥ 0, or -1 for unlimited.")
    action = serializers.ChoiceField(
        choices=QuotaAction.choices, required=False, allow_blank=True, help_text="Empty keeps the tier's action."
    )


class UsageRowSerializer(QuotaStatusSerializer):
    period_start = serializers.DateTimeField(read_only=True)


class UsageSerializer(serializers.Serializer):
    tenant = serializers.SlugField(read_only=True)
    timezone = serializers.CharField(read_only=True, help_text="Periods start at calendar boundaries in this zone.")
    quotas = UsageRowSerializer(many=True, read_only=True)


# --- Audit log -----------------------------------------------------------------------------------------------


class AuditLogSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditLog
        fields = ["id", "action", "object_type", "object_id", "actor", "before", "after", "request_id", "created_at"]
        read_only_fields = fields


# --- Sharing -------------------------------------------------------------------------------------------------


class SharingPolicySerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    allowed_tenants = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    blocked_tenants = serializers.SlugRelatedField(slug_field="slug", many=True, read_only=True)
    tier_minimum = serializers.ChoiceField(choices=TIER_MINIMUM_CHOICES, allow_blank=True, read_only=True)
    regions = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = SharingPolicy
        fields = [
            "id",
            "owner",
            "resource_type",
            "resource_id",
            "visibility",
            "allowed_tenants",
            "blocked_tenants",
            "tier_minimum",
            "regions",
            "max_cost_per_month",
            "requires_approval",
            "max_consumers",
            "expires_at",
            "provider_share_percent",
            "platform_fee_percent",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SharingPolicyUpdateSerializer(InputSerializer):
    visibility = serializers.ChoiceField(choices=Visibility.choices, required=False)
    allowed_tenants = serializers.ListField(
        child=serializers.CharField(max_length=63), required=False, help_text="Tenant slugs (visibility `tenant`)."
    )
    blocked_tenants = serializers.ListField(child=serializers.CharField(max_length=63), required=False)
    tier_minimum = serializers.ChoiceField(
        choices=TIER_MINIMUM_CHOICES, required=False, allow_blank=True, help_text="Empty: any tier."
    )
    regions = serializers.ListField(
        child=serializers.CharField(max_length=32), required=False, help_text="Consumer regions; empty = any."
    )
    max_cost_per_month = serializers.DecimalField(
        max_digits=20, decimal_places=6, min_value=Decimal(0), required=False, allow_null=True
    )
    requires_approval = serializers.BooleanField(required=False)
    max_consumers = serializers.IntegerField(min_value=1, max_value=MAX_INT32, required=False, allow_null=True)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)
    provider_share_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=Decimal(100), required=False
    )
    platform_fee_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal(0), max_value=Decimal(100), required=False
    )


class SharingPolicyCreateSerializer(SharingPolicyUpdateSerializer):
    resource_type = serializers.CharField(max_length=32, help_text="A registered kind: `service`, `model`, ...")
    resource_id = serializers.CharField(max_length=64)


class AccessRequestSerializer(serializers.ModelSerializer):
    resource_type = serializers.CharField(source="policy.resource_type", read_only=True)
    resource_id = serializers.CharField(source="policy.resource_id", read_only=True)
    provider = serializers.SlugField(source="policy.owner.slug", read_only=True)
    consumer = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    requested_by = serializers.CharField(source="requested_by.username", read_only=True, allow_null=True)
    decided_by = serializers.CharField(source="decided_by.username", read_only=True, allow_null=True)
    grant = serializers.SerializerMethodField(help_text="The grant an approval created, if any.")

    class Meta:
        model = AccessRequest
        fields = [
            "id",
            "policy",
            "resource_type",
            "resource_id",
            "provider",
            "consumer",
            "requested_by",
            "message",
            "status",
            "decided_by",
            "decided_at",
            "decision_note",
            "grant",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.UUIDField(allow_null=True))
    def get_grant(self, access: AccessRequest) -> str | None:
        grant = getattr(access, "grant", None)
        return str(grant.pk) if grant is not None else None


class AccessRequestCreateSerializer(InputSerializer):
    policy = serializers.PrimaryKeyRelatedField(
        queryset=SharingPolicy.objects.all(), pk_field=serializers.UUIDField(), help_text="Id of a sharing policy."
    )
    message = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class DecisionSerializer(InputSerializer):
    note = serializers.CharField(max_length=1000, required=False, allow_blank=True)


class GrantSerializer(serializers.ModelSerializer):
    resource_type = serializers.CharField(source="policy.resource_type", read_only=True)
    resource_id = serializers.CharField(source="policy.resource_id", read_only=True)
    provider = serializers.SlugField(source="policy.owner.slug", read_only=True)
    consumer = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Grant
        fields = [
            "id",
            "policy",
            "resource_type",
            "resource_id",
            "provider",
            "consumer",
            "request",
            "status",
            "granted_at",
            "expires_at",
            "revoked_at",
        ]
        read_only_fields = fields
