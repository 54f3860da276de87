"""django-filter filter sets of the tenancy list endpoints (invalid values are a 400 naming the parameter)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField

from apps.tenancy.context import require_tenant
from apps.tenancy.models import (
    AccessRequest,
    AccessRequestStatus,
    AuditLog,
    Grant,
    GrantStatus,
    Membership,
    Role,
    SharingPolicy,
    Tenant,
    TenantStatus,
    Tier,
    Visibility,
)


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, in UTC: any offset Python accepts (up to ±23:59) is valid, PostgreSQL's range is not."""

    def to_python(self, value: Any) -> datetime | None:
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise forms.ValidationError("This time is out of range in UTC.", code="overflow") from None


class UTCDateTimeFilter(django_filters.IsoDateTimeFilter):
    """`IsoDateTimeFilter` comparing in UTC (an out-of-range time is a 400 naming the parameter, not a 500)."""

    field_class = UTCDateTimeField


class TenantFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=TenantStatus.choices)
    tier = django_filters.ChoiceFilter(choices=Tier.choices)

    class Meta:
        model = Tenant
        fields = ["status", "tier"]


class MemberFilter(django_filters.FilterSet):
    role = django_filters.ChoiceFilter(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["role"]


class AuditLogFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(help_text="Exact action, e.g. `member_added`.")
    object_type = django_filters.CharFilter(help_text="Exact object type, e.g. `tenancy.membership`.")
    since = UTCDateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Entries at or after this ISO 8601 time."
    )
    until = UTCDateTimeFilter(field_name="created_at", lookup_expr="lt", help_text="Entries before this ISO 8601 time.")

    class Meta:
        model = AuditLog
        fields = ["action", "object_type", "since", "until"]


class SharingPolicyFilter(django_filters.FilterSet):
    visibility = django_filters.ChoiceFilter(choices=Visibility.choices)
    resource_type = django_filters.CharFilter()

    class Meta:
        model = SharingPolicy
        fields = ["visibility", "resource_type"]


class _DirectionFilterSet(django_filters.FilterSet):
    """Narrow rows to one side of the caller's tenant: what it consumes (`consumer`) or what it provides."""

    consumer_side: str = ""

    def filter_direction(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        tenant = require_tenant(self.request)
        if value == self.consumer_side:
            return queryset.filter(consumer=tenant)
        return queryset.filter(policy__owner=tenant)


class AccessRequestFilter(_DirectionFilterSet):
    consumer_side = "made"

    status = django_filters.ChoiceFilter(choices=AccessRequestStatus.choices)
    direction = django_filters.ChoiceFilter(
        choices=[("made", "Made by the caller's tenant"), ("received", "Received on the caller's policies")],
        method="filter_direction",
    )

    class Meta:
        model = AccessRequest
        fields = ["status", "direction"]


class GrantFilter(_DirectionFilterSet):
    consumer_side = "held"

    status = django_filters.ChoiceFilter(choices=GrantStatus.choices)
    direction = django_filters.ChoiceFilter(
        choices=[("held", "Held by the caller's tenant"), ("given", "Given on the caller's policies")],
        method="filter_direction",
    )

    class Meta:
        model = Grant
        fields = ["status", "direction"]
