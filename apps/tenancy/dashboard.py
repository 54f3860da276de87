"""Data of the usage dashboard: daily usage from registered providers (else tenancy's counters) and quota gauges."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from apps.tenancy.conf import tenancy_settings
from apps.tenancy.models import QuotaType, QuotaUsage, Tenant
from apps.tenancy.quotas import from_units, quota_status

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class DailyUsage:
    """Usage of one tenant on one (tenant-local) day, for one service ("" when the source does not know it)."""

    day: date
    requests: int = 0
    spend: Decimal = Decimal(0)
    tokens: int = 0
    service: str = ""


# provider(tenant, first_day, last_day) -> rows, or None when it has nothing for this tenant.
UsageProvider = Callable[[Tenant, date, date], Iterable[DailyUsage] | None]

_usage_providers: dict[str, UsageProvider] = {}


def money(amount: Decimal) -> str:
    """An amount with cents, and more digits only when it has them (`2.50`, `0.000032`): per-token prices make
    small spends, which `0.00` would hide."""
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:.2f}" if cents == amount else format(amount.normalize(), "f")


def grouped(value: Decimal | int | str) -> str:
    """A number for people: every digit, no exponent, thousands separated (`1,234,567.000045`)."""
    return format(Decimal(value), ",f")


def register_usage_provider(name: str, provider: UsageProvider) -> None:
    """Let an app supply daily usage (the consumption app: its rollups). The most recently registered provider that
    returns rows wins; tenancy's own quota counters are the fallback. Registering a name again replaces it."""
    _usage_providers.pop(name, None)
    _usage_providers[name] = provider


def unregister_usage_provider(name: str) -> None:
    _usage_providers.pop(name, None)


def quota_counter_usage(tenant: Tenant, first: date, last: date) -> list[DailyUsage]:
    """Daily usage from tenancy's durable quota counters (only hour and day periods can be split into days)."""
    tz = ZoneInfo(tenant.timezone or "UTC")
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    end = datetime(last.year, last.month, last.day, tzinfo=tz) + timedelta(days=1)
    rows = QuotaUsage.objects.filter(
        tenant=tenant,
        quota_type__in=[QuotaType.API_REQUESTS, QuotaType.SPEND_USD, QuotaType.TOKENS],
        period_start__gte=start,
        period_start__lt=end,
    ).values_list("quota_type", "period_start", "period_end", "used")
    per_day: dict[date, dict[str, Any]] = defaultdict(lambda: {"requests": 0, "spend": Decimal(0), "tokens": 0})
    for quota_type, period_start, period_end, used in rows:
        if period_end - period_start > timedelta(days=1):
            continue
        bucket = per_day[period_start.astimezone(tz).date()]
        if quota_type == QuotaType.API_REQUESTS:
            bucket["requests"] += used
        elif quota_type == QuotaType.SPEND_USD:
            bucket["spend"] += from_units(quota_type, used)
        else:
            bucket["tokens"] += used
    return [DailyUsage(day=day, **values) for day, values in sorted(per_day.items())]


def _daily_usage(tenant: Tenant, first: date, last: date) -> tuple[str, list[DailyUsage]]:
    for name, provider in reversed(list(_usage_providers.items())):
        rows = provider(tenant, first, last)
        if rows is not None:
            return name, list(rows)
    return "tenancy.quota_counters", quota_counter_usage(tenant, first, last)


def _number(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 1000000, 2.5."""
    return f"{Decimal(value).normalize():f}"


def _percentage_text(used: Decimal, percentage: float | None) -> str:
    """`percentage` has two decimals: a smaller use is shown as such, not as none ("-" for a zero limit)."""
    if percentage is None:
        return "-"
    return "< 0.01" if used > 0 and percentage == 0 else str(percentage)


def _gauge(row: dict[str, Any], tz: ZoneInfo) -> dict[str, Any]:
    unlimited = row["limit"] < 0
    percentage = row["percentage"]
    resets_at = row["resets_at"].astimezone(tz) if row["resets_at"] else None
    return {
        "quota_type": row["quota_type"],
        "label": QuotaType(row["quota_type"]).label,
        "period": row["period"],
        "action": row["action"],
        "used": _number(row["used"]),
        "limit": None if unlimited else _number(row["limit"]),
        "used_display": grouped(_number(row["used"])),
        "limit_display": None if unlimited else grouped(_number(row["limit"])),
        "unlimited": unlimited,
        "in_use": row["used"] > 0,
        "percentage": percentage,
        "percentage_display": _percentage_text(row["used"], percentage),
        "bar_percentage": min(float(percentage or 0), 100.0),
        "soft_limit_reached": bool(row["soft_limit_reached"]),
        "over_limit": percentage is not None and percentage >= 100,
        "resets_at": resets_at.isoformat() if resets_at else None,
        "resets_label": f"{resets_at:%Y-%m-%d %H:%M} {tz.key}" if resets_at else "",
    }


def dashboard_data(tenant: Tenant, *, days: int = DEFAULT_DAYS, today: date | None = None) -> dict[str, Any]:
    """Everything the dashboard shows for one tenant, JSON-safe: per-day and per-service series over the last
    `days` days (tenant-local dates), totals, and one gauge per quota with the soft-limit line. Money is exact
    decimal text (the page formats it without converting it to binary floats)."""
    tz = ZoneInfo(tenant.timezone or "UTC")
    today = today or timezone.now().astimezone(tz).date()
    first = today - timedelta(days=days - 1)
    source, rows = _daily_usage(tenant, first, today)
    day_list = [first + timedelta(days=offset) for offset in range(days)]
    requests = dict.fromkeys(day_list, 0)
    spend = dict.fromkeys(day_list, Decimal(0))
    tokens = dict.fromkeys(day_list, 0)
    services: dict[str, dict[str, Any]] = defaultdict(lambda: {"requests": 0, "spend": Decimal(0), "tokens": 0})
    for row in rows:
        if row.day not in requests:
            continue
        requests[row.day] += row.requests
        spend[row.day] += row.spend
        tokens[row.day] += row.tokens
        if row.service:
            services[row.service]["requests"] += row.requests
            services[row.service]["spend"] += row.spend
            services[row.service]["tokens"] += row.tokens
    by_service = sorted(services.items(), key=lambda item: (-item[1]["spend"], -item[1]["requests"], item[0]))
    totals = {
        "requests": sum(requests.values()),
        "spend": money(sum(spend.values(), Decimal(0))),
        "tokens": sum(tokens.values()),
    }
    return {
        "tenant": {"slug": tenant.slug, "name": tenant.name, "timezone": tenant.timezone},
        "source": source,
        "days": [d.isoformat() for d in day_list],
        "requests": [requests[d] for d in day_list],
        "spend": [_number(spend[d]) for d in day_list],
        "tokens": [tokens[d] for d in day_list],
        "services": [
            {"service": name, "requests": v["requests"], "spend": _number(v["spend"]), "tokens": v["tokens"]}
            for name, v in by_service
        ],
        "totals": totals,
        "totals_display": {name: grouped(value) for name, value in totals.items()},
        "gauges": [_gauge(row, tz) for row in quota_status(tenant)],
        "soft_limit_percent": float(tenancy_settings.SOFT_LIMIT_RATIO) * 100,
        "throttle_rate": tenancy_settings.THROTTLE_RATE,
    }
