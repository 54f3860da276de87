"""Usage reads: summaries from the daily rollups only (p95 from merged histograms, provider revenue), the ledger."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.consumption.models import LATENCY_BUCKETS_MS, UsageRecord, UsageRollup
from apps.tenancy.dashboard import DailyUsage
from apps.tenancy.models import Tenant

MAX_DAYS = 366
FULL_SHARE = Decimal(100)
REVENUE_PLACES = Decimal("0.0000000001")
_ROLLUP_COLUMNS = (
    "day",
    "model_id",
    "service_version_id",
    "requests",
    "errors",
    "disputed",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_sum_ms",
    "latency_buckets",
)


def percentile_ms(buckets: Sequence[int], quantile: float) -> float | None:
    """The `quantile` of a latency histogram (counts per `LATENCY_BUCKETS_MS` bucket, then the overflow bucket):
    the upper bound of the bucket holding the nearest-rank value. The open overflow bucket reports the last bound
    (a lower bound of the truth). None without requests."""
    total = sum(buckets)
    if total <= 0:
        return None
    rank = max(1, math.ceil(quantile * total))
    cumulative = 0
    for index, count in enumerate(buckets):
        cumulative += count
        if cumulative >= rank:
            return float(LATENCY_BUCKETS_MS[min(index, len(LATENCY_BUCKETS_MS) - 1)])
    return float(LATENCY_BUCKETS_MS[-1])


@dataclass
class Tally:
    """Sums of rollup rows; derived figures (average, p95, error rate) are computed from the sums."""

    requests: int = 0
    errors: int = 0
    disputed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)
    revenue: Decimal = Decimal(0)
    latency_sum_ms: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_MS) + 1))

    def add(self, row: dict[str, Any], share: Decimal | None = None) -> None:
        self.requests += row["requests"]
        self.errors += row["errors"]
        self.disputed += row["disputed"]
        self.prompt_tokens += row["prompt_tokens"]
        self.completion_tokens += row["completion_tokens"]
        self.cost += row["cost"]
        if share is not None:
            self.revenue += row["cost"] * share / FULL_SHARE
        self.latency_sum_ms += row["latency_sum_ms"]
        for index, count in enumerate(row["latency_buckets"] or ()):
            if index < len(self.buckets):
                self.buckets[index] += int(count)
            else:
                self.buckets[-1] += int(count)

    @property
    def avg_latency_ms(self) -> float | None:
        return round(self.latency_sum_ms / self.requests, 3) if self.requests else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def as_dict(self, *, with_revenue: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": round(self.error_rate, 6),
            "disputed": self.disputed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost": self.cost,
            "avg_latency_ms": self.avg_latency_ms,
            "p95_latency_ms": percentile_ms(self.buckets, 0.95),
        }
        if with_revenue:
            data["revenue"] = self.revenue.quantize(REVENUE_PLACES)
        return data


def provider_shares(version_ids: Iterable[Any]) -> dict[str, Decimal]:
    """The provider's share (percent) of what consumers pay, per service version: the service's sharing policy's
    `provider_share_percent`, or 100 % when the service has no policy."""
    from apps.publishing.models import ServiceVersion
    from apps.tenancy.models import SharingPolicy

    service_of = {
        str(version_id): str(service_id)
        for version_id, service_id in ServiceVersion.objects.filter(pk__in=list(version_ids)).values_list(
            "pk", "service_id"
        )
    }
    policies = dict(
        SharingPolicy.objects.filter(resource_type="service", resource_id__in=set(service_of.values())).values_list(
            "resource_id", "provider_share_percent"
        )
    )
    return {version_id: policies.get(service_id, FULL_SHARE) for version_id, service_id in service_of.items()}


def summary_window(days: int, today: date | None = None) -> tuple[date, date]:
    """First and last UTC day of an N-day window ending today (rollups are kept per UTC day)."""
    last = today or timezone.now().date()
    return last - timedelta(days=days - 1), last


def summarize_usage(
    tenant: Tenant,
    *,
    days: int = 30,
    as_provider: bool = False,
    today: date | None = None,
    api_key_id: Any = None,
    model_id: str | None = None,
) -> dict[str, Any]:
    """Requests, errors, tokens, cost, average and p95 latency and error rate — in total, per UTC day and per service
    — over the last `days` days. Consumers see what they used; providers (`as_provider`) what others used of their
    services, with revenue. Reads `UsageRollup` (one query; providers: two more for their revenue shares)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}")
    first, last = summary_window(days, today)
    rows_query = UsageRollup.objects.filter(day__gte=first, day__lte=last)
    rows_query = rows_query.filter(publisher=tenant) if as_provider else rows_query.filter(tenant=tenant)
    if api_key_id is not None:
        rows_query = rows_query.filter(api_key_id=api_key_id)
    if model_id:
        rows_query = rows_query.filter(model_id=model_id.split("@", 1)[0])
    rows = list(rows_query.order_by().values(*_ROLLUP_COLUMNS))
    shares = provider_shares({row["service_version_id"] for row in rows}) if as_provider and rows else {}
    totals = Tally()
    per_day = {first + timedelta(days=offset): Tally() for offset in range(days)}
    per_service: dict[str, Tally] = defaultdict(Tally)
    service_share: dict[str, Decimal] = {}
    for row in rows:
        share = shares.get(str(row["service_version_id"]), FULL_SHARE) if as_provider else None
        totals.add(row, share)
        per_day[row["day"]].add(row, share)
        per_service[row["model_id"]].add(row, share)
        if share is not None:
            service_share[row["model_id"]] = share
    services = sorted(per_service.items(), key=lambda item: (-item[1].cost, -item[1].requests, item[0]))
    service_rows = []
    for name, tally in services:
        entry = {"service": name, **tally.as_dict(with_revenue=as_provider)}
        if as_provider:
            entry["provider_share_percent"] = service_share.get(name, FULL_SHARE)
        service_rows.append(entry)
    return {
        "tenant": tenant.slug,
        "as": "provider" if as_provider else "consumer",
        "days": days,
        "first_day": first,
        "last_day": last,
        "totals": totals.as_dict(with_revenue=as_provider),
        "per_day": [{"day": day, **tally.as_dict(with_revenue=as_provider)} for day, tally in per_day.items()],
        "per_service": service_rows,
    }


def dashboard_usage(tenant: Tenant, first: date, last: date) -> list[DailyUsage] | None:
    """The tenancy usage dashboard's data source: requests, spend and tokens per day and per service, from the
    rollups (UTC days). None when the tenant has no rollups in the range (the dashboard then falls back)."""
    rows = (
        UsageRollup.objects.filter(tenant=tenant, day__gte=first, day__lte=last)
        .values("day", "model_id")
        .annotate(
            requests=Sum("requests"),
            spend=Sum("cost"),
            prompt=Sum("prompt_tokens"),
            completion=Sum("completion_tokens"),
        )
        .order_by("day", "model_id")
    )
    usage = [
        DailyUsage(
            day=row["day"],
            requests=int(row["requests"] or 0),
            spend=Decimal(row["spend"] or 0),
            tokens=int(row["prompt"] or 0) + int(row["completion"] or 0),
            service=row["model_id"],
        )
        for row in rows
    ]
    return usage or None


def list_usage_records(tenant: Tenant, *, as_provider: bool = False) -> QuerySet[UsageRecord]:
    """Raw ledger rows of a consumer tenant (its `tenant` index), or of a provider's services (its `publisher`
    index, with the consumer tenant joined), newest first."""
    if as_provider:
        return UsageRecord.objects.filter(publisher=tenant).select_related("tenant")
    return UsageRecord.objects.filter(tenant=tenant)
