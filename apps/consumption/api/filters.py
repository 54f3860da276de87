"""Filters of the usage records endpoint (an invalid value is a 400 naming the parameter)."""

from __future__ import annotations

import re
from typing import Any

import django_filters
from django import forms
from django.db.models import Q, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from apps.consumption.models import UsageRecord
from apps.tenancy.api.filters import UTCDateTimeFilter

_STATUS = re.compile(r"^(?:[1-5]\d\d|[1-5]xx|success|error)$")


class StatusField(forms.CharField):
    """An HTTP status (`429`), a class (`5xx`), `success` (< 400) or `error` (≥ 400)."""

    def clean(self, value: Any) -> Any:
        value = super().clean(value)
        if value and not _STATUS.match(value.lower()):
            raise forms.ValidationError("A status code (e.g. 429), a class (2xx-5xx), 'success' or 'error'.")
        return value.lower() if value else value


@extend_schema_field(OpenApiTypes.STR)
class StatusFilter(django_filters.Filter):
    field_class = StatusField

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if not value:
            return qs
        if value == "success":
            return qs.filter(status_code__lt=400)
        if value == "error":
            return qs.filter(status_code__gte=400)
        if value.endswith("xx"):
            low = int(value[0]) * 100
            return qs.filter(status_code__gte=low, status_code__lt=low + 100)
        return qs.filter(status_code=int(value))


class UsageRecordFilter(django_filters.FilterSet):
    key = django_filters.UUIDFilter(field_name="api_key_id", help_text="Id of an API key of your tenant.")
    model = django_filters.CharFilter(
        method="filter_model", help_text="Model id `publisher/service` (every version) or `publisher/service@1.2.0`."
    )
    service = django_filters.UUIDFilter(field_name="service_version__service_id", help_text="Id of a service.")
    version = django_filters.UUIDFilter(field_name="service_version_id", help_text="Id of a service version.")
    status = StatusFilter(help_text="`429`, `5xx`, `success` (< 400) or `error` (≥ 400).")
    endpoint = django_filters.CharFilter(help_text="`chat`, `completions` or `embeddings`.")
    since = UTCDateTimeFilter(
        field_name="started_at", lookup_expr="gte", help_text="Requests started at or after this ISO 8601 time."
    )
    until = UTCDateTimeFilter(
        field_name="started_at", lookup_expr="lt", help_text="Requests started before this ISO 8601 time."
    )
    consumer = django_filters.CharFilter(
        field_name="tenant__slug", help_text="Providers (`as=provider`): slug of a consumer tenant."
    )
    disputed = django_filters.BooleanFilter(
        field_name="usage_disputed",
        help_text="`true`: only requests whose provider claimed more usage than the request admitted, or no count.",
    )

    provider = django_filters.CharFilter(
        method="filter_provider",
        help_text="The offer that served or was tried: `publisher/service` (every version) or `…@1.2.0`.",
    )
    attempt_of = django_filters.CharFilter(
        field_name="attempt_of", help_text="A call's request id: its failed attempts at other offers."
    )
    attempts = django_filters.BooleanFilter(
        method="filter_attempts",
        help_text="`true`: only failed attempts at an offer (billed nothing); `false`: only calls.",
    )

    class Meta:
        model = UsageRecord
        fields = [
            "key",
            "model",
            "service",
            "version",
            "status",
            "endpoint",
            "since",
            "until",
            "consumer",
            "disputed",
            "provider",
            "attempt_of",
            "attempts",
        ]

    def filter_provider(self, qs: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        if "@" in value:
            return qs.filter(provider=value)
        return qs.filter(provider__startswith=f"{value}@")

    def filter_attempts(self, qs: QuerySet[Any], name: str, value: bool | None) -> QuerySet[Any]:
        if value is None:
            return qs
        return qs.exclude(attempt_of="") if value else qs.filter(attempt_of="")

    def filter_model(self, qs: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        if "@" in value:
            return qs.filter(model_id=value)
        return qs.filter(Q(model_id=value) | Q(model_id__startswith=f"{value}@"))
