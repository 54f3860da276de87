"""A web process SIGKILLed in the middle of streams: the reservations it held (budget, quotas, parallel slots) expire,
the reconciliation task (a real Celery worker, beat every 2 s) settles them, and the ledger has a record for every
request the upstream served — those of the dead process included."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest

from tests.faults.conftest import assert_openai_error, fault_cluster
from tests.support.cluster import wait_for
from tests.support.traffic import Outcome, call, call_sync, chat_body

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]

STREAMS = 3


@pytest.fixture(scope="module")
def cluster():
    with fault_cluster("worker_kill", worker=True) as c:
        world = c.build(
            [{"slug": "slow", "sla_timeout_ms": 2000}],
            [
                {"max_parallel": STREAMS, "budget_day_usd": "1000", "budget_month_usd": "5000"},
                {"budget_day_usd": "1000"},
                {"max_parallel": 1},
            ],
        )
        c.data.update(model=world["services"]["slow"]["model"], streaming=world["keys"][0], other=world["keys"][1])
        c.data["long"] = world["keys"][2]
        yield c


class Streams:
    """`count` streamed calls to one server in a background thread; `events` counts what each client received."""

    def __init__(self, server: str, secret: str, model: str, count: int, **extra: object) -> None:
        self.outcomes: list[Outcome] = []
        body = chat_body(model, stream=True, **extra)
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run(server, secret, body, count)))
        self._thread.start()

    async def _run(self, server: str, secret: str, body: dict, count: int) -> None:
        async with httpx.AsyncClient() as client:
            calls = (call(client, server, secret, body, timeout=120) for _ in range(count))
            self.outcomes = list(await asyncio.gather(*calls))

    def join(self) -> list[Outcome]:
        self._thread.join(120)
        assert not self._thread.is_alive()
        return self.outcomes


def test_a_web_process_killed_mid_stream_leaves_no_request_unrecorded(cluster) -> None:
    model = cluster.data["model"]
    streaming, other = cluster.data["streaming"], cluster.data["other"]
    victim, survivor = cluster.servers
    upstream = cluster.upstream.behaviour
    books = cluster.books
    for url in cluster.urls:
        assert call_sync(url, other["secret"], chat_body(model)).status == 200

    # given a long stream on the surviving server (200 words 0.25 s apart: 50 s, longer than its reservation's
    # first deadline of 2 s SLA timeout + 30 s) with the only parallel slot of its key
    upstream.reply_words, upstream.chunk_delays["long"] = 200, 0.25
    long_stream = Streams(survivor.url, cluster.data["long"]["secret"], model, 1, max_tokens=250, user="long")
    wait_for(lambda: upstream.in_flight >= 1, 30, what="the long stream flowing")
    # and streams in flight on the other server (0.25 s apart), holding every parallel slot of their key
    upstream.chunk_delays["victim"] = 0.25
    served_before = len(upstream.request_ids)
    streams = Streams(victim.url, streaming["secret"], model, STREAMS, max_tokens=100, user="victim")
    wait_for(lambda: len(upstream.request_ids) >= served_before + STREAMS, 30, what="the streams reaching upstream")
    wait_for(lambda: upstream.in_flight >= STREAMS + 1, 30, what="the streams flowing")
    time.sleep(1.0)  # a few chunks each

    # when that server's process is SIGKILLed
    victim.kill()
    outcomes = streams.join()
    killed_ids = set(upstream.request_ids[served_before:])
    assert len(killed_ids) == STREAMS
    assert all(o.status == 200 and not o.completed for o in outcomes), [(o.status, o.completed) for o in outcomes]
    wait_for(lambda: upstream.disconnected >= STREAMS, 30, what="the upstream seeing its streams cut")

    # then the other server keeps serving, but the key's parallel slots stay taken until the reservations expire
    assert call_sync(survivor.url, other["secret"], chat_body(model)).status == 200
    refused = call_sync(survivor.url, streaming["secret"], chat_body(model))
    assert_openai_error(refused, 429, "rate_limit_parallel")
    admitted = wait_for(
        lambda: (o := call_sync(survivor.url, streaming["secret"], chat_body(model))).ok and o,
        120,
        interval=1.0,
        what="the dead streams' reservations expiring",
    )

    # while the long stream, alive past its first deadline, keeps its reservation and its parallel slot
    busy = call_sync(survivor.url, cluster.data["long"]["secret"], chat_body(model))
    assert_openai_error(busy, 429, "rate_limit_parallel")

    # and the reconciliation task settles them, writing the records the dead process could not
    records = books.wait_for_records(killed_ids, seconds=120)
    assert set(records) == killed_ids
    for record in records.values():
        assert (record.status_code, record.error_code, record.estimated) == (499, "worker_lost", True)
        assert record.stream and record.prompt_tokens > 0 and record.cost > 0

    # the long stream ends normally, recorded with what it delivered (not as lost)
    (long_outcome,) = long_stream.join()
    assert long_outcome.completed
    (long_record,) = books.wait_for_records({long_outcome.request_id}).values()
    assert (long_record.status_code, long_record.error_code, long_record.completion_tokens) == (200, "", 200)
    tenant_id = streaming["tenant_id"]
    books.wait_settled(tenant_id)

    # every request the upstream served has exactly one record; the books agree with each other
    served = set(upstream.request_ids)
    client_calls = killed_ids | {admitted.request_id, refused.request_id, busy.request_id, long_outcome.request_id}
    assert set(books.records(client_calls)) == client_calls & served
    books.wait_drained()
    books.assert_rollups_equal_records()
    books.assert_quota_usage_equals_records(tenant_id)
    books.assert_counters_match_database(tenant_id, streaming["key_id"])
