"""PostgreSQL restarted during load: while it is down, calls that need it are refused with a 503 in the API's
shape (never a 500); once it is back everything recovers, and every call that was answered 2xx has exactly one
usage record."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.faults.conftest import assert_served_or_unavailable, fault_cluster
from tests.support.cluster import wait_for
from tests.support.traffic import Load, call_sync, chat_body

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster():
    with fault_cluster("postgres") as c:
        world = c.build([{"slug": "local"}], [{"budget_day_usd": "1000", "budget_month_usd": "5000"}])
        c.data["service"], c.data["key"] = world["services"]["local"], world["keys"][0]
        yield c


def usage_page(url: str, secret: str) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/usage/?limit=5", headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_postgres_restarted_during_load_answers_503_then_recovers_without_losing_a_record(cluster) -> None:
    model, secret = cluster.data["service"]["model"], cluster.data["key"]["secret"]
    tenant_id, key_id = cluster.data["key"]["tenant_id"], cluster.data["key"]["key_id"]
    for url in cluster.urls:
        assert call_sync(url, secret, chat_body(model)).status == 200
        assert usage_page(url, secret).status_code == 200

    # given traffic on both servers (streamed and not)
    load = Load(cluster.urls, secret, model, clients=6).start()
    try:
        load.wait_for(lambda outcomes: sum(o.ok for o in outcomes) >= 30, what="30 answered calls")

        # when PostgreSQL crashes (every connection cut)
        down = time.monotonic()
        cluster.postgres.stop("immediate")

        # then, once the servers need the database (keys and routes leave their memory after a second), proxied
        # calls are refused with 503 in OpenAI's shape, and the management API with 503 in its envelope
        load.wait_for(
            lambda outcomes: sum(1 for o in outcomes if o.started > down and o.status == 503) >= 10,
            what="calls refused while PostgreSQL is down",
        )
        for url in cluster.urls:
            refused = usage_page(url, secret)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "database_unavailable"
            assert refused.json()["request_id"]

        # when it is back
        cluster.postgres.start()
        back = time.monotonic()

        # then both servers serve again, the proxy and the management API alike
        for url in cluster.urls:
            load.wait_for(
                lambda outcomes, url=url: any(o.server == url and o.started > back and o.ok for o in outcomes),
                what=f"{url} serving calls again",
            )
            wait_for(lambda url=url: usage_page(url, secret).status_code == 200, 30, what=f"{url} API again")
        load.wait_for(lambda outcomes: sum(1 for o in outcomes if o.started > back and o.ok) >= 30, what="traffic")
    finally:
        outcomes = load.stop()

    # every answer was a success or an OpenAI-shaped 503: no 500, no HTML, no dropped connection
    assert_served_or_unavailable(outcomes)

    # every call answered 2xx has exactly one usage record (records wait in Redis while the database is away)
    books = cluster.books
    books.wait_drained()
    assert books.dead_letters() == 0
    answered = {o.request_id: o for o in outcomes if o.ok}
    records = books.wait_for_records(answered, seconds=30)
    missing = set(answered) - set(records)
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no usage record"
    for request_id, outcome in answered.items():
        assert records[request_id].status_code == 200
        assert records[request_id].completion_tokens == outcome.usage["completion_tokens"]
    client_ids = {o.request_id for o in outcomes}
    assert set(books.records(client_ids)) == client_ids & set(cluster.upstream.behaviour.request_ids)

    # nothing counted twice: rollups, durable quota usage and Redis' counters agree with the records
    books.assert_rollups_equal_records()
    books.assert_quota_usage_equals_records(tenant_id)
    books.wait_settled(tenant_id)
    books.assert_counters_match_database(tenant_id, key_id)
