"""Usage summaries equal the raw sums (hypothesis), read rollups only (also over 10**6 raw rows); the dashboard."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from apps.consumption import ledger, usage
from apps.consumption.models import LATENCY_BUCKETS_MS, ApiKey, UsageRecord, UsageRollup
from apps.consumption.services import create_api_key
from apps.tenancy.dashboard import dashboard_data

RECORDS_TABLE = UsageRecord._meta.db_table


@dataclass
class Traffic:
    """A consumer calling a provider's service versions (`acme/echo`, `acme/other`) through one key."""

    consumer: Any
    provider: Any
    version: Any
    key: ApiKey
    other_version: Any = None
    model_id: str = "acme/echo"


def entry(
    traffic: Traffic,
    *,
    started_at: datetime | None = None,
    prompt: int = 10,
    completion: int = 5,
    cost: Decimal = Decimal("0.001"),
    latency: float = 120.0,
    status: int = 200,
    key: ApiKey | None = None,
    endpoint: str = "chat",
    model_id: str | None = None,
    request_id: str | None = None,
) -> ledger.Entry:
    started = started_at or timezone.now()
    model_id = model_id or traffic.model_id
    version = traffic.other_version if model_id.startswith("acme/other") else traffic.version
    return ledger.Entry(
        request_id=request_id or uuid.uuid4().hex,
        tenant_id=str(traffic.consumer.pk),
        api_key_id=str((key or traffic.key).pk),
        publisher_id=str(traffic.provider.pk),
        service_version_id=str(version.pk),
        model_id=model_id,
        endpoint=endpoint,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost=cost,
        price_snapshot={"input_per_mtok": "1000"},
        latency_ms=latency,
        status_code=status,
        started_at=started,
        finished_at=started + timedelta(milliseconds=latency),
    )


def write(entries: list[ledger.Entry], batch: int = 200) -> None:
    """Through the real ledger writer (records and rollups in one transaction per batch)."""
    for start in range(0, len(entries), batch):
        ledger.write_entries(entries[start : start + batch])


def make_traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    """The provider's `acme/echo` (from the conftest) and a second service `acme/other`; a consumer key."""
    from apps.publishing import services as publishing
    from tests.apps.consumption.conftest import ECHO_DEFINITION

    _, other, _ = publishing.publish_service(
        publisher=provider,
        actor=provider.owner,
        slug="other",
        version="1.0.0",
        values={**ECHO_DEFINITION, "name": "Other"},
    )
    key, _ = create_api_key(tenant=consumer, actor=consumer.owner, name="traffic", scopes=["consume", "read"])
    return Traffic(
        consumer=consumer, provider=provider, version=echo_service.versions.get(), key=key, other_version=other
    )


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


def raw_p95_bucket_bound(latencies: list[float]) -> float | None:
    """The nearest-rank 95th percentile of raw latencies, mapped to its histogram bucket's upper bound."""
    if not latencies:
        return None
    value = sorted(latencies)[max(1, math.ceil(0.95 * len(latencies))) - 1]
    for bound in LATENCY_BUCKETS_MS:
        if value <= bound:
            return float(bound)
    return float(LATENCY_BUCKETS_MS[-1])


def raw_figures(records: list[UsageRecord]) -> dict[str, Any]:
    requests = len(records)
    return {
        "requests": requests,
        "errors": sum(1 for r in records if r.status_code >= 400),
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "cost": sum((r.cost for r in records), Decimal(0)),
        "p95_latency_ms": raw_p95_bucket_bound([r.latency_ms for r in records]),
        "avg_latency_ms": sum(r.latency_ms for r in records) / requests if requests else None,
    }


def assert_matches(summary: dict[str, Any], raw: dict[str, Any]) -> None:
    for name in ("requests", "errors", "prompt_tokens", "completion_tokens", "cost", "p95_latency_ms"):
        assert summary[name] == raw[name], name
    assert summary["total_tokens"] == raw["prompt_tokens"] + raw["completion_tokens"]
    if raw["requests"]:
        assert summary["avg_latency_ms"] == pytest.approx(raw["avg_latency_ms"], abs=1e-3)
        assert summary["error_rate"] == pytest.approx(raw["errors"] / raw["requests"], abs=1e-6)
    else:
        assert summary["avg_latency_ms"] is None and summary["error_rate"] == 0


# --- percentile_ms --------------------------------------------------------------------------------------------


def test_percentile_of_a_histogram() -> None:
    buckets = [0] * (len(LATENCY_BUCKETS_MS) + 1)
    buckets[1] = 94  # 25-50 ms
    buckets[4] = 5  # 250-500 ms
    buckets[-1] = 1  # over 60 s
    assert usage.percentile_ms(buckets, 0.5) == 50.0
    assert usage.percentile_ms(buckets, 0.95) == 500.0
    assert usage.percentile_ms(buckets, 1.0) == float(LATENCY_BUCKETS_MS[-1])
    assert usage.percentile_ms([0] * len(buckets), 0.95) is None


# --- Summaries equal the raw sums ------------------------------------------------------------------------------

TRAFFIC = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=6),  # days ago
        st.integers(min_value=0, max_value=5000),  # prompt tokens
        st.integers(min_value=0, max_value=5000),  # completion tokens
        st.decimals(min_value=0, max_value=5, places=6, allow_nan=False, allow_infinity=False),
        st.floats(min_value=0, max_value=90_000, allow_nan=False, allow_infinity=False),
        st.sampled_from([200, 200, 200, 400, 429, 500, 502, 504]),
        st.sampled_from(["acme/echo", "acme/echo@1.0.0", "acme/other"]),
    ),
    max_size=60,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=TRAFFIC)
def test_summary_equals_the_raw_sums(traffic: Traffic, rows: list[tuple[Any, ...]]) -> None:
    # given random traffic through a fresh key, written by the ledger writer
    key, _ = create_api_key(tenant=traffic.consumer, actor=None, name="h", scopes=["consume"])
    now = timezone.now()
    write(
        [
            entry(
                traffic,
                key=key,
                started_at=now - timedelta(days=days, seconds=1),
                prompt=prompt,
                completion=completion,
                cost=cost,
                latency=round(latency, 3),
                status=status,
                model_id=model,
            )
            for days, prompt, completion, cost, latency, status, model in rows
        ]
    )
    records = list(UsageRecord.objects.filter(api_key_id=key.pk))

    # when
    summary = usage.summarize_usage(traffic.consumer, days=7, api_key_id=key.pk)

    # then the totals, each day and each service equal the raw rows' figures
    assert_matches(summary["totals"], raw_figures(records))
    for day in summary["per_day"]:
        assert_matches(day, raw_figures([r for r in records if r.started_at.astimezone(UTC).date() == day["day"]]))
    services = {row["service"]: row for row in summary["per_service"]}
    assert set(services) == {r.model_id.split("@")[0] for r in records}
    for name, row in services.items():
        assert_matches(row, raw_figures([r for r in records if r.model_id.split("@")[0] == name]))


def test_summary_window_and_filters(traffic: Traffic) -> None:
    other_key, _ = create_api_key(tenant=traffic.consumer, actor=None, name="other", scopes=["consume"])
    now = timezone.now()
    write(
        [
            entry(traffic, started_at=now),
            entry(traffic, started_at=now - timedelta(days=3)),
            entry(traffic, started_at=now - timedelta(days=40)),  # outside a 30-day window
            entry(traffic, key=other_key, started_at=now),
            entry(traffic, started_at=now, model_id="acme/other"),
        ]
    )

    assert usage.summarize_usage(traffic.consumer)["totals"]["requests"] == 4
    assert usage.summarize_usage(traffic.consumer, days=1)["totals"]["requests"] == 3
    assert usage.summarize_usage(traffic.consumer, days=60)["totals"]["requests"] == 5
    assert usage.summarize_usage(traffic.consumer, api_key_id=other_key.pk)["totals"]["requests"] == 1
    assert usage.summarize_usage(traffic.consumer, model_id="acme/other")["totals"]["requests"] == 1
    summary = usage.summarize_usage(traffic.consumer, days=5)
    assert len(summary["per_day"]) == 5 and summary["per_day"][-1]["day"] == now.astimezone(UTC).date()
    with pytest.raises(ValueError):
        usage.summarize_usage(traffic.consumer, days=0)


def test_provider_summary_has_revenue_by_the_sharing_policy(traffic: Traffic) -> None:
    from apps.tenancy import sharing

    write([entry(traffic, cost=Decimal("1.000000")), entry(traffic, cost=Decimal("0.500000"))])
    # no policy: the provider keeps 100 %
    summary = usage.summarize_usage(traffic.provider, as_provider=True)
    assert summary["totals"]["revenue"] == Decimal("1.5")
    assert summary["per_service"][0]["provider_share_percent"] == Decimal(100)
    # the consumer's own summary has no revenue
    assert "revenue" not in usage.summarize_usage(traffic.consumer)["totals"]

    sharing.create_policy(
        resource_type="service",
        resource_id=str(traffic.version.service_id),
        actor=traffic.provider.owner,
        visibility="public",
    )  # default provider share: 80 %

    summary = usage.summarize_usage(traffic.provider, as_provider=True)
    assert summary["totals"]["revenue"] == Decimal("1.2")
    assert summary["per_service"][0]["revenue"] == Decimal("1.2")
    assert summary["per_service"][0]["provider_share_percent"] == Decimal(80)
    assert summary["totals"]["cost"] == Decimal("1.5")


# --- Rollups only -----------------------------------------------------------------------------------------------


def queries_touching_records(context: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in context.captured_queries if RECORDS_TABLE in q["sql"]]


def test_the_summary_never_reads_raw_records(traffic: Traffic, django_assert_max_num_queries: Any) -> None:
    now = timezone.now()
    write([entry(traffic, started_at=now - timedelta(hours=h), latency=float(h * 10)) for h in range(300)])
    client = APIClient()
    client.force_authenticate(traffic.consumer.owner)
    provider_client = APIClient()
    provider_client.force_authenticate(traffic.provider.owner)

    with CaptureQueriesContext(connection) as context, django_assert_max_num_queries(12):
        response = client.get("/api/v1/usage/summary/", {"days": 30})
        provider = provider_client.get("/api/v1/usage/summary/", {"days": 30, "as": "provider"})
        direct = usage.summarize_usage(traffic.consumer, days=30)

    assert response.status_code == provider.status_code == 200
    assert response.json()["totals"]["requests"] == provider.json()["totals"]["requests"] == 300
    assert direct["totals"]["requests"] == 300
    assert queries_touching_records(context) == []
    assert any(UsageRollup._meta.db_table in q["sql"] for q in context.captured_queries)


@pytest.mark.postgres
@pytest.mark.slow
def test_the_summary_over_a_million_raw_rows_reads_rollups_only(
    traffic: Traffic, django_assert_max_num_queries: Any
) -> None:
    # given 1 000 000 raw records over 30 days, inserted by generate_series, and their 30 daily rollups
    key, version = traffic.key, traffic.version
    ids = {"tenant": traffic.consumer.pk, "key": key.pk, "publisher": traffic.provider.pk, "version": version.pk}
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {RECORDS_TABLE} (id, request_id, tenant_id, api_key_id, publisher_id, service_version_id,
                model_id, endpoint, prompt_tokens, completion_tokens, cost, price_snapshot, latency_ms, ttft_ms,
                status_code, error_code, estimated, stream, usage_disputed, started_at, finished_at)
            SELECT gen_random_uuid(), 'bulk-' || n, %(tenant)s, %(key)s, %(publisher)s, %(version)s, 'acme/echo',
                'chat', 10, 5, 0.000020, '{{}}'::jsonb, 100, NULL, 200, '', false, false, false,
                now() - ((n %% 30) || ' days')::interval, now() - ((n %% 30) || ' days')::interval
            FROM generate_series(1, 1000000) AS n
            """,
            ids,
        )
        cursor.execute(f"ANALYZE {RECORDS_TABLE}")
    today = timezone.now().date()
    UsageRollup.objects.bulk_create(
        [
            UsageRollup(
                day=today - timedelta(days=d),
                tenant=traffic.consumer,
                api_key=key,
                publisher=traffic.provider,
                service_version=version,
                model_id="acme/echo",
                requests=33_334 if 1 <= d <= 10 else 33_333,  # n % 30 == d for n in 1..10**6
                prompt_tokens=10,
                completion_tokens=5,
                cost=Decimal("0.6"),
                latency_sum_ms=100.0,
                latency_buckets=[0, 0, 1] + [0] * 9,
            )
            for d in range(30)
        ]
    )
    assert UsageRecord.objects.count() == 1_000_000
    client = APIClient()
    client.force_authenticate(traffic.consumer.owner)

    # when
    with CaptureQueriesContext(connection) as context, django_assert_max_num_queries(8):
        started = timezone.now()
        response = client.get("/api/v1/usage/summary/", {"days": 30})
        elapsed = timezone.now() - started

    # then the answer comes from the 30 rollup rows: no query names the records table, and it is fast
    assert response.status_code == 200
    assert response.json()["totals"]["requests"] == 1_000_000
    assert queries_touching_records(context) == []
    assert elapsed < timedelta(seconds=2)


# --- The usage dashboard --------------------------------------------------------------------------------------


def test_the_dashboard_reads_the_rollups(traffic: Traffic) -> None:
    now = timezone.now()
    write(
        [
            entry(traffic, started_at=now, cost=Decimal("0.25"), prompt=3, completion=2),
            entry(traffic, started_at=now, cost=Decimal("0.25"), model_id="acme/other"),
            entry(traffic, started_at=now - timedelta(days=1), cost=Decimal("1")),
        ]
    )

    data = dashboard_data(traffic.consumer, today=now.astimezone(UTC).date())

    assert data["source"] == "consumption.rollups"
    assert data["requests"][-2:] == [1, 2]
    assert data["spend"][-2:] == ["1", "0.5"]
    assert {row["service"]: row["requests"] for row in data["services"]} == {"acme/echo": 2, "acme/other": 1}
    assert data["totals"]["requests"] == 3 and data["totals"]["spend"] == "1.50"


def test_the_dashboard_falls_back_without_rollups(consumer: Any) -> None:
    assert usage.dashboard_usage(consumer, timezone.now().date(), timezone.now().date()) is None
    assert dashboard_data(consumer)["source"] != "consumption.rollups"
