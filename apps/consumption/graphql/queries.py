"""Queries of the consumption app, scoped and permitted exactly as its REST API (`/api/v1/keys/`, `/usage/`,
`/usage/summary/`, `/quota/`): the same selectors, filters, serializers and permission rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import graphene
from django.utils import timezone

from apps.consumption import selectors, sla, usage
from apps.consumption.api.filters import UsageRecordFilter
from apps.consumption.api.serializers import SummaryQuerySerializer
from apps.consumption.authentication import api_key_of
from apps.consumption.graphql.types import (
    MANAGE_KEYS,
    READ_USAGE,
    ApiKeyConnection,
    ApiKeyNode,
    QuotaReport,
    ServiceSlaStatus,
    UsageRecordConnection,
    UsageSummary,
    as_provider,
    perspective_argument,
)
from apps.consumption.models import ApiKey
from apps.consumption.selectors import key_quota
from apps.tenancy import quotas
from apps.tenancy.context import require_tenant
from apps.tenancy.models import Tenant
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import NotFoundError, ValidationError
from llm_infra_django.graphql import PagedConnectionField, node_pk, requires

RECORD_FILTERS = ("key", "model", "service", "version", "status", "endpoint", "since", "until", "consumer", "disputed")
SLA_DAYS = 30
SLA_FIGURES = (
    "state",
    "requests",
    "server_errors",
    "error_rate",
    "availability",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "max_latency_ms",
    "availability_target",
    "latency_state",
    "error_rate_state",
    "disputed",
    "dispute_state",
)


def _tenant(info: graphene.ResolveInfo) -> Tenant:
    return require_tenant(info.context)


def _uuid_text(value: Any, type_name: str | None = None) -> str:
    """A Relay global id or a UUID as UUID text; anything else unchanged (the REST filter/serializer then names the
    argument in a validation error)."""
    try:
        return str(node_pk(value, type_name))
    except NotFoundError:
        return str(value)


def _filter_data(arguments: dict[str, Any]) -> dict[str, str]:
    data: dict[str, str] = {}
    for name in RECORD_FILTERS:
        value = arguments.get(name)
        if value is None:
            continue
        if isinstance(value, datetime):
            value = value.isoformat()
        elif name in ("key", "service", "version"):
            value = _uuid_text(value, "ApiKeyNode" if name == "key" else None)
        data[name] = str(value)
    return data


def _parsed(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


class Queries(graphene.ObjectType):
    api_keys = PagedConnectionField(
        ApiKeyConnection,
        status=graphene.String(description="`active`, `expired` or `revoked`."),
        description="Tenant admins (or a key with `admin`): the tenant's API keys, newest first — metadata only.",
    )
    api_key = graphene.Field(
        ApiKeyNode,
        id=graphene.ID(required=True, description="Relay id or UUID."),
        description="One API key of your tenant (null for any other id).",
    )
    usage_records = PagedConnectionField(
        UsageRecordConnection,
        as_=perspective_argument(),
        key=graphene.ID(description="An API key of your tenant (Relay id or UUID)."),
        model=graphene.String(description="`publisher/service` (every version) or `publisher/service@1.2.0`."),
        service=graphene.ID(description="Id of a service."),
        version=graphene.ID(description="Id of a service version."),
        status=graphene.String(description="`429`, `5xx`, `success` (< 400) or `error` (≥ 400)."),
        endpoint=graphene.String(description="`chat`, `completions` or `embeddings`."),
        since=graphene.DateTime(description="Requests started at or after this time."),
        until=graphene.DateTime(description="Requests started before this time."),
        consumer=graphene.String(description="Providers: slug of a consumer tenant."),
        disputed=graphene.Boolean(description="Only records whose reported usage was (true) or was not disputed."),
        description="Tenant members (or a key with `read`): one row per request that reached an upstream, "
        "failures included, newest first.",
    )
    usage_summary = graphene.Field(
        UsageSummary,
        as_=perspective_argument(),
        days=graphene.Int(description="1-366, default 30."),
        key=graphene.ID(description="Only this API key of your tenant."),
        model=graphene.String(description="Only this model id (`publisher/service`)."),
        description="Tenant members (or a key with `read`): requests, errors, tokens, cost, average and p95 latency "
        "in total, per UTC day and per service over the last `days` days (from the daily rollups).",
    )
    quota = graphene.Field(
        QuotaReport,
        description="Tenant members (or a key with `read`): every quota of the tenant with its usage; for an API "
        "key, also its rate limits and spend against its budgets.",
    )
    sla_status = graphene.List(
        graphene.NonNull(ServiceSlaStatus),
        required=True,
        as_=perspective_argument(),
        days=graphene.Int(description=f"Consumers: versions used in the last `days` days (1-366, default {SLA_DAYS})."),
        model=graphene.String(description="Only this model id (`publisher/service[@version]`)."),
        description="Tenant members (or a key with `read`): measured SLA of the service versions your tenant "
        "consumes (or, `as: provider`, publishes).",
    )

    @staticmethod
    @requires(*MANAGE_KEYS)
    def resolve_api_keys(root: Any, info: graphene.ResolveInfo, status: str | None = None, **kwargs: Any) -> Any:
        return selectors.list_api_keys(_tenant(info), status=status)

    @staticmethod
    @requires(*MANAGE_KEYS)
    def resolve_api_key(root: Any, info: graphene.ResolveInfo, id: str) -> ApiKey | None:
        try:
            pk = node_pk(id, "ApiKeyNode", "API key")
        except NotFoundError:
            return None
        return selectors.list_api_keys(_tenant(info)).filter(pk=pk).first()

    @staticmethod
    @requires(*READ_USAGE)
    def resolve_usage_records(root: Any, info: graphene.ResolveInfo, as_: str | None = None, **arguments: Any) -> Any:
        provider = as_provider(as_)
        queryset = usage.list_usage_records(_tenant(info), as_provider=provider)
        filterset = UsageRecordFilter(data=_filter_data(arguments), queryset=queryset)
        if not filterset.is_valid():
            raise ValidationError(fields={name: list(map(str, errors)) for name, errors in filterset.errors.items()})
        records: Any = filterset.qs
        return records.select_related("tenant").order_by("-started_at", "-id")

    @staticmethod
    @requires(*READ_USAGE)
    def resolve_usage_summary(
        root: Any, info: graphene.ResolveInfo, as_: str | None = None, **arguments: Any
    ) -> dict[str, Any]:
        provider = as_provider(as_)
        data = {name: arguments[name] for name in ("days", "model") if arguments.get(name) is not None}
        if arguments.get("key") is not None:
            data["key"] = _uuid_text(arguments["key"], "ApiKeyNode")
        query = validated(SummaryQuerySerializer, data, {"request": info.context})
        return usage.summarize_usage(
            _tenant(info),
            days=query["days"],
            as_provider=provider,
            api_key_id=query.get("key"),
            model_id=query.get("model"),
        )

    @staticmethod
    @requires(*READ_USAGE)
    def resolve_quota(root: Any, info: graphene.ResolveInfo) -> dict[str, Any]:
        tenant = _tenant(info)
        key = api_key_of(info.context)
        return {
            "tenant": tenant.slug,
            "timezone": tenant.timezone,
            "quotas": quotas.quota_status(tenant),
            "key": key_quota(key) if key is not None else None,
        }

    @staticmethod
    @requires(*READ_USAGE)
    def resolve_sla_status(
        root: Any,
        info: graphene.ResolveInfo,
        as_: str | None = None,
        days: int | None = None,
        model: str | None = None,
    ) -> list[ServiceSlaStatus]:
        provider = as_provider(as_)
        days = SLA_DAYS if days is None else days
        if not 1 <= days <= usage.MAX_DAYS:
            raise ValidationError(fields={"days": [f"A whole number from 1 to {usage.MAX_DAYS}."]})
        since = timezone.now().date() - timedelta(days=days - 1)
        versions = selectors.list_sla_versions(_tenant(info), as_provider=provider, since=since)
        if model:
            versions = [v for v in versions if model in (v.model_id, f"{v.model_id}@{v.version}")]
        statuses = sla.get_sla_statuses([v.pk for v in versions])
        rows = []
        for version in versions:
            status = statuses[str(version.pk)]
            figures = {name: status[name] for name in SLA_FIGURES if name in status}
            rows.append(
                ServiceSlaStatus(
                    **figures,
                    service_version_id=version.pk,
                    model_id=version.model_id,
                    version=version.version,
                    window_start=_parsed(status.get("window_start")),
                    window_end=_parsed(status.get("window_end")),
                )
            )
        return rows
