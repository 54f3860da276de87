"""The quota engine: periods in the tenant's time zone, BLOCK/THROTTLE/ALERT, soft limit, durability, atomicity."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.tenancy import quotas, services
from apps.tenancy.models import QuotaPeriod, QuotaUsage, Tier
from apps.tenancy.signals import quota_alert, quota_soft_limit_reached
from llm_infra_django.errors import QuotaExceededError, RateLimitError

pytestmark = pytest.mark.django_db


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "tz", "now", "start", "end"),
    [
        (QuotaPeriod.HOUR, "UTC", utc(2026, 5, 4, 13, 59, 59), utc(2026, 5, 4, 13), utc(2026, 5, 4, 14)),
        (QuotaPeriod.DAY, "UTC", utc(2026, 5, 4, 0, 0), utc(2026, 5, 4), utc(2026, 5, 5)),
        (QuotaPeriod.MONTH, "UTC", utc(2026, 12, 31, 23), utc(2026, 12, 1), utc(2027, 1, 1)),
        # Paris is UTC+1 in winter: the local month starts the day before in UTC.
        (QuotaPeriod.MONTH, "Europe/Paris", utc(2026, 1, 31, 23, 30), utc(2026, 1, 31, 23), utc(2026, 2, 28, 23)),
        (QuotaPeriod.MONTH, "Europe/Paris", utc(2026, 1, 31, 22, 30), utc(2025, 12, 31, 23), utc(2026, 1, 31, 23)),
        # New York springs forward on 2026-03-08: that local day lasts 23 hours.
        (QuotaPeriod.DAY, "America/New_York", utc(2026, 3, 8, 12), utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)),
        # ... and falls back on 2026-11-01: 25 hours.
        (QuotaPeriod.DAY, "America/New_York", utc(2026, 11, 1, 12), utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)),
        (QuotaPeriod.HOUR, "Asia/Kolkata", utc(2026, 5, 4, 13, 10), utc(2026, 5, 4, 12, 30), utc(2026, 5, 4, 13, 30)),
    ],
)
def test_period_bounds(period: str, tz: str, now: datetime, start: datetime, end: datetime) -> None:
    assert quotas.period_bounds(period, tz, now) == (start, end)


@given(
    now=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)),
    tz=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"]),
    period=st.sampled_from([QuotaPeriod.HOUR, QuotaPeriod.DAY, QuotaPeriod.MONTH]),
)
@settings(max_examples=200, deadline=None)
def test_period_always_contains_now(now: datetime, tz: str, period: str) -> None:
    start, end = quotas.period_bounds(period, tz, now)
    assert start <= now < end
    following_start, _ = quotas.period_bounds(period, tz, end)
    assert following_start == end


def _override(tenant, staff, quota_type: str, limit, action: str | None = None) -> None:
    services.set_quota_override(tenant=tenant, quota_type=quota_type, limit=limit, action=action, actor=staff)


def test_block_refuses_past_the_limit_and_counts_nothing_refused(tenant, staff) -> None:
    # given a request quota of 5 that blocks
    _override(tenant, staff, "api_requests", 5, "block")

    # when 5 requests pass and a 6th comes
    for _ in range(5):
        quotas.consume(tenant, "api_requests")
    with pytest.raises(QuotaExceededError) as caught:
        quotas.consume(tenant, "api_requests")

    # then it is refused with limit, used and reset time; usage stays at 5 in the counter and the database
    error = caught.value
    assert error.status_code == 402
    assert Decimal(error.details["limit"]) == 5
    assert Decimal(error.details["used"]) == 5
    assert error.details["resets_at"] is not None
    assert quotas.current_usage(tenant, "api_requests") == 5
    assert QuotaUsage.objects.get(tenant=tenant, quota_type="api_requests").used == 5


def test_alert_allows_counts_and_emits_once(tenant, staff) -> None:
    _override(tenant, staff, "tokens", 100, "alert")
    events: list[dict] = []
    quota_alert.connect(lambda **kw: events.append(kw), weak=False, dispatch_uid="test-alert")
    try:
        quotas.consume(tenant, "tokens", 90)
        decision = quotas.consume(tenant, "tokens", 20)
        quotas.consume(tenant, "tokens", 5)
    finally:
        quota_alert.disconnect(dispatch_uid="test-alert")
    assert decision.allowed and decision.over_limit
    assert [e["used"] for e in events] == [Decimal(110)]
    assert quotas.current_usage(tenant, "tokens") == 115


def test_soft_limit_event_fires_when_crossing_80_percent(tenant, staff) -> None:
    _override(tenant, staff, "api_requests", 10, "block")
    events: list[dict] = []
    quota_soft_limit_reached.connect(lambda **kw: events.append(kw), weak=False, dispatch_uid="test-soft")
    try:
        flags = [quotas.consume(tenant, "api_requests").soft_limit_reached for _ in range(10)]
    finally:
        quota_soft_limit_reached.disconnect(dispatch_uid="test-soft")
    assert flags == [False] * 7 + [True] + [False] * 2
    assert len(events) == 1 and events[0]["quota_type"] == "api_requests"


def test_throttle_allows_past_the_limit_at_the_reduced_rate(tenant, staff) -> None:
    # given a starter tenant whose request quota (THROTTLE) is 2
    tenant.tier = Tier.STARTER
    tenant.save()
    _override(tenant, staff, "api_requests", 2)
    assert quotas.get_limit(tenant, "api_requests").action == "throttle"

    # when 2 requests pass and 2 more come at once
    quotas.consume(tenant, "api_requests")
    quotas.consume(tenant, "api_requests")
    over = quotas.consume(tenant, "api_requests")
    with pytest.raises(RateLimitError) as caught:
        quotas.consume(tenant, "api_requests")

    # then the first is allowed (and billed as overage) and the second waits for the 1/s bucket
    assert over.allowed and over.over_limit
    assert 0 < caught.value.retry_after <= 1
    assert caught.value.headers() == {"Retry-After": "1"}
    assert quotas.current_usage(tenant, "api_requests") == 3


def test_spend_is_counted_exactly_in_micro_dollars(tenant, staff) -> None:
    _override(tenant, staff, "spend_usd", "1.000001", "block")
    quotas.consume(tenant, "spend_usd", Decimal("0.333333"))
    quotas.consume(tenant, "spend_usd", Decimal("0.333334"))
    quotas.consume(tenant, "spend_usd", Decimal("0.333334"))
    with pytest.raises(QuotaExceededError):
        quotas.consume(tenant, "spend_usd", Decimal("0.000001"))
    assert quotas.from_units("spend_usd", quotas.current_usage(tenant, "spend_usd")) == Decimal("1.000001")


def test_unlimited_never_blocks(tenant) -> None:
    tenant.tier = Tier.ENTERPRISE
    tenant.save()
    decision = quotas.consume(tenant, "api_requests", 10**9)
    assert decision.allowed and not decision.over_limit and decision.limit == -1


def test_per_process_counters_rebuild_from_the_database(tenant, staff) -> None:
    _override(tenant, staff, "api_requests", 5, "block")
    for _ in range(3):
        quotas.consume(tenant, "api_requests")
    quotas.local_counters.clear()  # the process restarted
    quotas.consume(tenant, "api_requests")
    quotas.consume(tenant, "api_requests")
    with pytest.raises(QuotaExceededError):
        quotas.consume(tenant, "api_requests")


def test_quota_status_reports_usage_percentage_remaining_and_reset(tenant, staff) -> None:
    _override(tenant, staff, "api_requests", 10, "block")
    for _ in range(4):
        quotas.consume(tenant, "api_requests")
    rows = {row["quota_type"]: row for row in quotas.quota_status(tenant)}
    requests = rows["api_requests"]
    assert requests["used"] == 4 and requests["remaining"] == 6 and requests["percentage"] == 40.0
    assert requests["resets_at"] is not None
    assert rows["members"]["used"] == 1 and rows["members"]["limit"] == 3


REDIS = {
    "TRACING": {"ENABLED": False},
    "TENANT_RESOLVER": "apps.tenancy.context.tenant_for_logs",
    "REDIS_URL": os.environ.get("REDIS_URL", ""),
}


@pytest.mark.redis
def test_redis_counters_survive_a_flush(tenant, staff) -> None:
    from llm_infra_django.redis import get_redis

    with override_settings(LLM_INFRA=REDIS):
        # given 3 requests counted on Redis
        _override(tenant, staff, "api_requests", 5, "block")
        for _ in range(3):
            quotas.consume(tenant, "api_requests")
        start, _ = quotas.period_bounds("month", tenant.timezone)
        key = quotas.counter_key(tenant.pk, "api_requests", start)
        client = get_redis()
        assert int(client.get(key)) == 3

        # when Redis loses the counter
        client.delete(key)

        # then the counter is rebuilt from the database: 2 more pass, the 6th is refused
        quotas.consume(tenant, "api_requests")
        quotas.consume(tenant, "api_requests")
        with pytest.raises(QuotaExceededError):
            quotas.consume(tenant, "api_requests")
        assert int(client.get(key)) == 5
        client.delete(key)
