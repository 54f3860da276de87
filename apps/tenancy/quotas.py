"""The quota engine: limits per tenant, period boundaries, and atomic check-and-consume on Redis with durable usage.

Metered quotas (requests, tokens, spend) count per calendar period in the tenant's time zone. A Redis counter per
(tenant, quota, period) is checked and incremented by one Lua call; every admitted amount is also added to the
`QuotaUsage` row of the period, so a lost Redis is rebuilt from the database (the script seeds a missing counter).
Without Redis a per-process counter (seeded the same way) is used. Count quotas (members, services, keys) compare
the current number of objects with the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from redis.exceptions import RedisError

from apps.tenancy import money
from apps.tenancy.conf import tenancy_settings
from apps.tenancy.models import (
    UNLIMITED,
    QuotaAction,
    QuotaOverride,
    QuotaPeriod,
    QuotaType,
    QuotaUsage,
    Tenant,
    TierQuota,
)
from apps.tenancy.signals import quota_alert, quota_soft_limit_reached
from llm_infra_django.errors import QuotaExceededError, RateLimitError, ServiceUnavailableError
from llm_infra_django.memory import LocalStore
from llm_infra_django.redis import cached_script, get_redis

logger = structlog.get_logger(__name__)

# Integer units of each metered quota in counters: spend in the ledger's quantum (10⁻¹⁰ USD, see money.py).
UNITS: dict[str, int] = {QuotaType.SPEND_USD: money.UNITS_PER_USD}
METERED = (QuotaType.API_REQUESTS, QuotaType.TOKENS, QuotaType.SPEND_USD)

CONSUME_LUA = """
-- KEYS[1] counter; ARGV: amount, limit (-1 = unlimited), block (1/0), seed (-1 = unknown), ttl seconds
local current = redis.call('GET', KEYS[1])
if not current then
  if tonumber(ARGV[4]) < 0 then return {-2, 0} end
  redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
  current = ARGV[4]
end
current = tonumber(current)
local amount = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
if ARGV[3] == '1' and limit >= 0 and current + amount > limit then
  return {0, current}
end
local updated = redis.call('INCRBY', KEYS[1], amount)
return {1, updated}
"""
# A refund never takes a counter below zero.
REFUND_LUA = """
local value = redis.call('DECRBY', KEYS[1], ARGV[1])
if value < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return value
"""


@dataclass(frozen=True)
class QuotaLimit:
    quota_type: str
    period: str
    limit: Decimal
    action: str

    @property
    def unlimited(self) -> bool:
        return self.limit == UNLIMITED

    @property
    def limit_units(self) -> int:
        return -1 if self.unlimited else to_units(self.quota_type, self.limit)


@dataclass(frozen=True)
class QuotaDecision:
    """Outcome of a consumption: allowed amounts are counted; `throttled` means allowed at the reduced rate."""

    quota_type: str
    allowed: bool
    action: str
    limit: Decimal
    used: Decimal
    resets_at: datetime | None
    soft_limit_reached: bool = False
    over_limit: bool = False


# --- Limits -----------------------------------------------------------------------------------------------


def _limits_cache_key(tenant_id: Any) -> str:
    return f"tenancy:limits:{tenant_id}"


def get_limits(tenant: Tenant) -> dict[str, QuotaLimit]:
    """The tenant's limits: tier defaults with its overrides applied (cached, invalidated on every change)."""
    key = _limits_cache_key(tenant.pk)
    cached = cache.get(key)
    if cached is not None and cached.get("tier") == tenant.tier:
        return {
            name: QuotaLimit(name, v["period"], Decimal(v["limit"]), v["action"])
            for name, v in cached["limits"].items()
        }
    limits = {
        row.quota_type: QuotaLimit(row.quota_type, row.period, row.limit, row.action)
        for row in TierQuota.objects.filter(tier=tenant.tier)
    }
    for override in QuotaOverride.objects.filter(tenant=tenant):
        base = limits.get(override.quota_type)
        period = base.period if base else _default_period(override.quota_type)
        action = override.action or (base.action if base else QuotaAction.BLOCK)
        limits[override.quota_type] = QuotaLimit(override.quota_type, period, override.limit, action)
    cache.set(
        key,
        {
            "tier": tenant.tier,
            "limits": {n: {"period": q.period, "limit": str(q.limit), "action": q.action} for n, q in limits.items()},
        },
        tenancy_settings.LIMITS_CACHE_SECONDS,
    )
    return limits


def get_limit(tenant: Tenant, quota_type: str) -> QuotaLimit:
    limit = get_limits(tenant).get(quota_type)
    return limit or QuotaLimit(quota_type, _default_period(quota_type), UNLIMITED, QuotaAction.ALERT)


def _default_period(quota_type: str) -> str:
    return QuotaPeriod.MONTH if quota_type in METERED else QuotaPeriod.NONE


def invalidate_limits(tenant: Tenant) -> None:
    cache.delete(_limits_cache_key(tenant.pk))


# --- Periods -----------------------------------------------------------------------------------------------


# The last period computed per (period, time zone): most calls fall in it (the proxy asks three times a call).
_last_bounds: dict[tuple[str, str], tuple[datetime, datetime]] = {}


def period_bounds(period: str, tz_name: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Start and end (UTC) of the calendar period holding `now`, in the tenant's time zone."""
    now = now or timezone.now()
    last = _last_bounds.get((period, tz_name))
    if last is not None and last[0] <= now < last[1]:
        return last
    bounds = _period_bounds(period, tz_name, now)
    _last_bounds[(period, tz_name)] = bounds
    return bounds


def _period_bounds(period: str, tz_name: str, now: datetime) -> tuple[datetime, datetime]:
    tz = ZoneInfo(tz_name or "UTC")
    local = now.astimezone(tz)
    if period == QuotaPeriod.HOUR:
        start = local.replace(minute=0, second=0, microsecond=0)
        end = start + timedelta(hours=1)
    elif period == QuotaPeriod.DAY:
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
        following = local.date() + timedelta(days=1)
        end = datetime(following.year, following.month, following.day, tzinfo=tz)
    elif period == QuotaPeriod.MONTH:
        start = datetime(local.year, local.month, 1, tzinfo=tz)
        end = datetime(local.year + local.month // 12, local.month % 12 + 1, 1, tzinfo=tz)
    else:
        raise ValueError(f"quota period {period!r} has no boundaries")
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def counter_key(tenant_id: Any, quota_type: str, period_start: datetime) -> str:
    """Redis key of one period's counter (hash-tagged by tenant so a tenant's counters share a cluster slot; spend
    names its unit, so that a counter of an older unit is never read as this one)."""
    unit = ":e10" if quota_type == QuotaType.SPEND_USD else ""
    return f"quota:{{t:{tenant_id}}}:{quota_type}{unit}:{int(period_start.timestamp())}"


# --- Durable usage -----------------------------------------------------------------------------------------


def stored_usage(tenant: Tenant, quota_type: str, period_start: datetime) -> int:
    row = QuotaUsage.objects.filter(tenant=tenant, quota_type=quota_type, period_start=period_start).first()
    return row.used if row else 0


def persist_usage(tenant: Tenant, quota_type: str, start: datetime, end: datetime, units: int) -> None:
    """Add `units` to the period's durable counter (an upsert that is safe under concurrency)."""
    filters = {"tenant": tenant, "quota_type": quota_type, "period_start": start}
    if QuotaUsage.objects.filter(**filters).update(used=F("used") + units):
        return
    try:
        with transaction.atomic():
            QuotaUsage.objects.create(period_end=end, used=units, **filters)
    except IntegrityError:
        QuotaUsage.objects.filter(**filters).update(used=F("used") + units)


# --- Counters: Redis, or per process ------------------------------------------------------------------------


class _LocalCounters(LocalStore[int]):
    """Per-process fallback with the script's semantics (used when no Redis is configured)."""

    def consume(self, key: str, amount: int, limit: int, block: bool, seed: int, ttl: int) -> tuple[int, int]:
        now = timezone.now().timestamp()
        with self.lock:
            current = self.value(key, now)
            if current is None:
                if seed < 0:
                    return -2, 0
                current = seed
                self.put(key, seed, now + ttl)
            if block and limit >= 0 and current + amount > limit:
                return 0, current
            self.put(key, current + amount)
            return 1, current + amount

    def refund(self, key: str, amount: int) -> None:
        with self.lock:
            current = self.value(key, timezone.now().timestamp())
            if current is not None:
                self.put(key, max(current - amount, 0))

    def get(self, key: str) -> int | None:
        with self.lock:
            return self.value(key, timezone.now().timestamp())


local_counters = _LocalCounters()


def _run(key: str, amount: int, limit: int, block: bool, seed: int, ttl: int) -> tuple[int, int]:
    client = get_redis()
    if client is None:
        return local_counters.consume(key, amount, limit, block, seed, ttl)
    try:
        status, value = cached_script(client, CONSUME_LUA)(
            keys=[key], args=[amount, limit, 1 if block else 0, seed, ttl]
        )
    except RedisError as exc:
        logger.error("quota_store_unavailable", error=str(exc))
        raise ServiceUnavailableError("Quota accounting is unavailable; try again shortly.", retry_after=1) from exc
    return int(status), int(value)


def _refund(key: str, amount: int) -> None:
    client = get_redis()
    if client is None:
        local_counters.refund(key, amount)
        return
    try:
        cached_script(client, REFUND_LUA)(keys=[key], args=[amount])
    except RedisError:
        logger.error("quota_refund_failed", key=key, amount=amount)


def current_usage(tenant: Tenant, quota_type: str, now: datetime | None = None) -> int:
    """Units used in the current period (from the live counter, else from the database)."""
    limit = get_limit(tenant, quota_type)
    start, _ = period_bounds(limit.period, tenant.timezone, now)
    key = counter_key(tenant.pk, quota_type, start)
    client = get_redis()
    value: Any
    try:
        value = client.get(key) if client is not None else local_counters.get(key)
    except RedisError:
        value = None
    return int(value) if value is not None else stored_usage(tenant, quota_type, start)


# --- Check and consume --------------------------------------------------------------------------------------


def to_units(quota_type: str, amount: Decimal | int) -> int:
    """An amount in the counter units of `quota_type` (spend: money.to_units, exact for ledger costs)."""
    if quota_type == QuotaType.SPEND_USD:
        return money.to_units(amount)
    return int(amount)


def from_units(quota_type: str, units: int) -> Decimal:
    return money.from_units(units) if quota_type == QuotaType.SPEND_USD else Decimal(units)


def consume(
    tenant: Tenant, quota_type: str, amount: Decimal | int = 1, *, now: datetime | None = None
) -> QuotaDecision:
    """Count `amount` against the tenant's quota for the current period, atomically.

    BLOCK over the limit raises `QuotaExceededError` (nothing counted); THROTTLE over the limit allows at the
    reduced rate (`RateLimitError` beyond it) and counts the overage; ALERT allows, counts, and emits `quota_alert`.
    """
    if quota_type not in METERED:
        raise ValueError(f"{quota_type!r} is not a metered quota")
    limit = get_limit(tenant, quota_type)
    start, end = period_bounds(limit.period, tenant.timezone, now)
    units = to_units(quota_type, amount)
    if units < 0:
        raise ValueError("a quota is consumed by a non-negative amount")
    key = counter_key(tenant.pk, quota_type, start)
    ttl = int((end - start).total_seconds()) + 86_400
    block = limit.action == QuotaAction.BLOCK
    if limit.action == QuotaAction.THROTTLE and not limit.unlimited:
        _throttle_if_over(tenant, limit, key, start, units, ttl)
    status, used = _run(key, units, limit.limit_units, block, -1, ttl)
    if status == -2:
        status, used = _run(key, units, limit.limit_units, block, stored_usage(tenant, quota_type, start), ttl)
    if status == 0:
        raise QuotaExceededError(quota=quota_type, limit=limit.limit, used=from_units(quota_type, used), resets_at=end)
    try:
        persist_usage(tenant, quota_type, start, end, units)
    except Exception:
        _refund(key, units)
        raise
    return _decision(tenant, limit, used - units, used, end)


def _throttle_if_over(tenant: Tenant, limit: QuotaLimit, key: str, start: datetime, units: int, ttl: int) -> None:
    """Past a THROTTLE limit, requests pass only at the reduced rate of a per-tenant token bucket."""
    from llm_infra_django.ratelimit.limiter import limiter

    status, used = _run(key, 0, -1, False, -1, ttl)
    if status == -2:
        used = stored_usage(tenant, limit.quota_type, start)
    if used + units <= limit.limit_units:
        return
    decision = limiter.hit(
        f"quota-throttle:{tenant.pk}:{limit.quota_type}", tenancy_settings.THROTTLE_RATE, fail_open=False
    )
    if not decision.allowed:
        raise RateLimitError(
            f"Quota {limit.quota_type!r} is past its limit; requests are throttled.", retry_after=decision.retry_after
        )


def _decision(tenant: Tenant, limit: QuotaLimit, before: int, after: int, end: datetime) -> QuotaDecision:
    soft = over = False
    if not limit.unlimited:
        threshold = limit.limit_units * float(tenancy_settings.SOFT_LIMIT_RATIO)
        soft = before < threshold <= after
        over = after > limit.limit_units
        payload = {
            "tenant": tenant,
            "quota_type": limit.quota_type,
            "limit": limit.limit,
            "used": from_units(limit.quota_type, after),
            "period_end": end,
        }
        if soft:
            logger.warning("quota_soft_limit_reached", tenant=tenant.slug, quota=limit.quota_type)
            quota_soft_limit_reached.send(sender=Tenant, **payload)
        if over and before <= limit.limit_units and limit.action == QuotaAction.ALERT:
            logger.warning("quota_alert", tenant=tenant.slug, quota=limit.quota_type)
            quota_alert.send(sender=Tenant, **payload)
    return QuotaDecision(
        quota_type=limit.quota_type,
        allowed=True,
        action=limit.action,
        limit=limit.limit,
        used=from_units(limit.quota_type, after),
        resets_at=end,
        soft_limit_reached=soft,
        over_limit=over,
    )


def enforce_count(tenant: Tenant, quota_type: str, *, current: int, adding: int = 1) -> None:
    """For count quotas (members, services, keys): refuse under BLOCK, alert under ALERT, when `current + adding`
    passes the limit. Call it inside the transaction that holds a lock on the tenant."""
    limit = get_limit(tenant, quota_type)
    if limit.unlimited or current + adding <= limit.limit:
        return
    if limit.action == QuotaAction.BLOCK:
        raise QuotaExceededError(quota=str(quota_type), limit=limit.limit.normalize(), used=current)
    logger.warning("quota_alert", tenant=tenant.slug, quota=quota_type)
    quota_alert.send(
        sender=Tenant,
        tenant=tenant,
        quota_type=quota_type,
        limit=limit.limit,
        used=Decimal(current + adding),
        period_end=None,
    )


def quota_status(tenant: Tenant, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every quota of the tenant with limit, usage, percentage, remaining and reset time (for APIs and admin)."""
    from apps.tenancy.models import Membership

    rows = []
    for quota_type in QuotaType.values:
        limit = get_limit(tenant, quota_type)
        resets_at = None
        if quota_type in METERED:
            _, resets_at = period_bounds(limit.period, tenant.timezone, now)
            used = from_units(quota_type, current_usage(tenant, quota_type, now))
        elif quota_type == QuotaType.MEMBERS:
            used = Decimal(Membership.objects.filter(tenant=tenant).count())
        else:
            used = Decimal(count_providers.get(quota_type, lambda t: 0)(tenant))
        percentage = None if limit.unlimited or limit.limit == 0 else float(used / limit.limit * 100)
        rows.append(
            {
                "quota_type": quota_type,
                "period": limit.period,
                "limit": limit.limit,
                "action": limit.action,
                "used": used,
                "remaining": None if limit.unlimited else max(limit.limit - used, Decimal(0)),
                "percentage": round(percentage, 2) if percentage is not None else None,
                "resets_at": resets_at,
                "soft_limit_reached": percentage is not None and percentage >= tenancy_settings.SOFT_LIMIT_RATIO * 100,
            }
        )
    return rows


# Apps above tenancy register how to count their objects for count quotas (e.g. services published, API keys).
count_providers: dict[str, Any] = {}


def register_count_provider(quota_type: str, counter: Any) -> None:
    """Let another app say how many objects a tenant holds for a count quota (`counter(tenant) -> int`)."""
    count_providers[quota_type] = counter
