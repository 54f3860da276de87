"""The ledger: a record for every request that reached (or was meant for) the upstream, failures included;
idempotent on request id; rollups equal the sum of raw records."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Sum
from django.test import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.consumption import ledger
from apps.consumption.models import ApiKey, UsageRecord, UsageRollup
from tests.apps.consumption.conftest import drain_ledger, publish_openai

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "acme/local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


@pytest.fixture
def local_service(provider, upstream):
    behaviour, url = upstream
    publish_openai(provider, url, sla_timeout_ms=500)
    return behaviour


async def call(secret: str, body: dict = BODY):
    return await AsyncClient().post(
        "/v1/chat/completions", body, content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )


async def records() -> list[UsageRecord]:
    await sync_to_async(drain_ledger)()
    return [r async for r in UsageRecord.objects.order_by("started_at")]


async def test_upstream_5xx_is_a_502_with_a_record(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.status = 500
    response = await call(secret)
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    (record,) = await records()
    assert (record.status_code, record.error_code, record.cost) == (502, "external_service_error", 0)


async def test_upstream_4xx_is_passed_on_with_a_record(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.status = 400
    response = await call(secret)
    assert response.status_code == 400
    (record,) = await records()
    assert record.status_code == 400


async def test_upstream_timeout_is_a_504_with_a_record(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.delay = 2
    response = await call(secret)
    assert response.status_code == 504
    (record,) = await records()
    assert record.status_code == 504 and record.error_code == "timeout"


async def test_breaker_opens_after_failures_and_records_the_refusals(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.status = 503
    statuses = [(await call(secret)).status_code for _ in range(7)]
    assert statuses[:5] == [502] * 5
    assert statuses[5:] == [503, 503]
    refused = await call(secret)
    assert int(refused["Retry-After"]) >= 1
    assert local_service.requests == 5, "an open circuit does not call the upstream"
    rows = await records()
    assert [r.status_code for r in rows] == [502] * 5 + [503] * 3


async def test_garbage_from_the_upstream_is_a_502_with_a_record(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.garbage = True
    response = await call(secret)
    assert response.status_code == 502
    assert len(await records()) == 1


async def test_without_upstream_usage_the_answer_is_counted_and_flagged(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.include_usage = False
    response = await call(secret)
    assert response.status_code == 200
    (record,) = await records()
    assert record.estimated and record.completion_tokens == 2


def _entry(key: ApiKey, version_id: str, **overrides) -> ledger.Entry:
    now = datetime.now(UTC)
    values = {
        "request_id": uuid.uuid4().hex,
        "tenant_id": str(key.tenant_id),
        "api_key_id": str(key.pk),
        "publisher_id": str(key.tenant_id),
        "service_version_id": version_id,
        "model_id": "acme/echo",
        "endpoint": "chat",
        "prompt_tokens": 3,
        "completion_tokens": 4,
        "cost": Decimal("0.0000123456"),
        "price_snapshot": {},
        "latency_ms": 12.5,
        "status_code": 200,
        "started_at": now,
        "finished_at": now,
    }
    values.update(overrides)
    return ledger.Entry(**values)


def test_records_are_idempotent_on_request_id(api_key, echo_service) -> None:
    key = ApiKey.objects.get()
    version = str(echo_service.versions.get().pk)
    entry = _entry(key, version)
    assert ledger.write_entries([entry]) == {entry.request_id}
    assert ledger.write_entries([entry, entry]) == set()
    assert UsageRecord.objects.count() == 1
    rollup = UsageRollup.objects.get()
    assert rollup.requests == 1 and rollup.cost == entry.cost


@given(
    st.lists(
        st.tuples(
            st.integers(0, 5000),
            st.integers(0, 5000),
            st.integers(0, 10**7),
            st.sampled_from([200, 200, 200, 429, 502, 504]),
            st.floats(0, 60_000),
        ),
        min_size=1,
        max_size=40,
    )
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_rollups_equal_the_sum_of_raw_records(api_key, echo_service, traffic) -> None:
    UsageRollup.objects.all().delete()
    UsageRecord.objects.all()._raw_delete(UsageRecord.objects.db)
    key = ApiKey.objects.get()
    version = str(echo_service.versions.get().pk)
    entries = [
        _entry(
            key,
            version,
            prompt_tokens=p,
            completion_tokens=c,
            cost=Decimal(micro) / 10**6,
            status_code=s,
            latency_ms=lat,
        )
        for p, c, micro, s, lat in traffic
    ]
    for start in range(0, len(entries), 7):  # several batches, like several flushes
        ledger.write_entries(entries[start : start + 7])
    raw = UsageRecord.objects.aggregate(p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost"))
    rolled = UsageRollup.objects.aggregate(
        p=Sum("prompt_tokens"), c=Sum("completion_tokens"), cost=Sum("cost"), n=Sum("requests"), e=Sum("errors")
    )
    assert (rolled["p"], rolled["c"], rolled["cost"]) == (raw["p"], raw["c"], raw["cost"])
    assert rolled["n"] == len(entries)
    assert rolled["e"] == sum(1 for e in entries if e.status_code >= 400)
    buckets = UsageRollup.objects.get().latency_buckets
    assert sum(buckets) == len(entries)


def test_concurrent_flushes_add_up(api_key, echo_service) -> None:
    key = ApiKey.objects.get()
    version = str(echo_service.versions.get().pk)

    async def many() -> None:
        writer = ledger.LedgerWriter()
        await asyncio.gather(*(writer.write(_entry(key, version)) for _ in range(50)))

    asyncio.run(many())
    assert UsageRecord.objects.count() == 50
    assert UsageRollup.objects.get().requests == 50


@pytest.mark.redis
def test_the_stream_is_drained_and_a_bad_record_never_blocks_it(api_key, echo_service) -> None:
    from apps.consumption import ledger_stream
    from llm_infra_django.redis import get_redis

    # given a garbage entry ahead of a good one in the ledger stream
    client = get_redis()
    key = ApiKey.objects.get()
    good = _entry(key, str(echo_service.versions.get().pk))
    client.xadd(ledger_stream.stream_key(), {"e": "not json"})
    client.xadd(ledger_stream.stream_key(), ledger_stream.encode(good))

    # when the stream is drained
    drain_ledger()

    # then the good record is written, the bad one is set aside, and the stream is empty
    assert UsageRecord.objects.filter(request_id=good.request_id).exists()
    assert client.xlen(ledger_stream.stream_key() + ":dead") == 1
    assert client.xlen(ledger_stream.stream_key()) == 0


@pytest.mark.redis
def test_the_periodic_task_drains_the_stream(api_key, echo_service) -> None:
    from apps.consumption import ledger_stream
    from apps.consumption.tasks import drain_ledger_task
    from llm_infra_django.redis import get_redis

    key = ApiKey.objects.get()
    entries = [_entry(key, str(echo_service.versions.get().pk)) for _ in range(3)]
    for entry in entries:
        get_redis().xadd(ledger_stream.stream_key(), ledger_stream.encode(entry))
    assert drain_ledger_task() == 3
    assert UsageRecord.objects.count() == 3
