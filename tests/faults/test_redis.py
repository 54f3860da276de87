"""Redis stopped during load: throttles follow their fail-open setting, money admission fails closed (OpenAI-shaped
503, never a 500), and once Redis is back the service resumes and the counters are rebuilt from the database
without forgetting or double-counting any usage."""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import assert_served_or_unavailable, fault_cluster, graphql
from tests.support.traffic import Load, call_sync, chat_body

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def cluster():
    # server 0 lets throttled requests through when Redis fails (the default), server 1 refuses them
    with fault_cluster(
        "redis", web=[{"FAULTS_THROTTLE_FAIL_OPEN": "true"}, {"FAULTS_THROTTLE_FAIL_OPEN": "false"}], worker=True
    ) as c:
        world = c.build(
            [{"slug": "local"}, {"slug": "quick", "sla_timeout_ms": 2000}],
            [{"budget_day_usd": "1000", "budget_month_usd": "5000"}, {"budget_day_usd": "1000", "max_parallel": 50}],
        )
        c.data["service"], c.data["key"] = world["services"]["local"], world["keys"][0]
        c.data["quick"], c.data["frozen_key"] = world["services"]["quick"], world["keys"][1]
        yield c


def _resumed(outcomes, since: float, server: str):
    return next((o for o in outcomes if o.server == server and o.started >= since and o.ok), None)


def test_redis_killed_during_load_fails_closed_for_money_then_recovers_from_the_database(cluster) -> None:
    model, secret = cluster.data["service"]["model"], cluster.data["key"]["secret"]
    tenant_id, key_id = cluster.data["key"]["tenant_id"], cluster.data["key"]["key_id"]
    open_url, closed_url = cluster.urls
    for url in cluster.urls:
        assert call_sync(url, secret, chat_body(model)).status == 200
        assert graphql(url, secret).status_code == 200

    # given traffic on both servers (streamed and not)
    load = Load(cluster.urls, secret, model, clients=6).start()
    try:
        load.wait_for(lambda outcomes: sum(o.ok for o in outcomes) >= 30, what="30 answered calls")

        # when Redis dies (no persistence: every counter, reservation and stream entry in it is gone)
        killed = time.monotonic()
        cluster.redis.kill()

        # then proxied calls are refused with 503 (admission fails closed) while it is away
        load.wait_for(
            lambda outcomes: sum(1 for o in outcomes if o.started > killed + 0.5 and o.status == 503) >= 10,
            what="calls refused while Redis is down",
        )
        # a throttle failing open lets requests through; one failing closed answers 503 in the API's shape
        opened = graphql(open_url, secret)
        assert opened.status_code == 200, opened.text
        assert opened.json()["data"] == {"__typename": "Query"}
        refused = graphql(closed_url, secret)
        assert refused.status_code == 503, refused.text
        assert refused.json()["errors"][0]["extensions"]["code"] == "service_unavailable"
        assert float(refused.headers["Retry-After"]) > 0

        # when Redis comes back, empty
        cluster.redis.start()
        back = time.monotonic()

        # then both servers serve again, and keep serving
        for url in cluster.urls:
            load.wait_for(lambda outcomes, url=url: _resumed(outcomes, back, url), what=f"{url} serving again")
        resumed = {url: round(_resumed(load.since(back), back, url).ended - back, 2) for url in cluster.urls}
        print("service resumed after Redis came back within (s):", resumed)
        load.wait_for(lambda outcomes: sum(1 for o in outcomes if o.started > back and o.ok) >= 40, what="traffic")
    finally:
        outcomes = load.stop()

    # every answer was a success or an OpenAI-shaped refusal: no 500, no HTML, no dropped connection
    assert_served_or_unavailable(outcomes, "service_unavailable")

    # every call answered 2xx has exactly one usage record, with the usage the client was told
    books = cluster.books
    books.wait_drained()
    assert books.dead_letters() == 0
    answered = {o.request_id: o for o in outcomes if o.ok}
    records = books.wait_for_records(answered, seconds=30)
    missing = set(answered) - set(records)
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no usage record"
    for request_id, outcome in answered.items():
        record = records[request_id]
        assert record.status_code == 200
        assert (record.prompt_tokens, record.completion_tokens) == (
            outcome.usage["prompt_tokens"],
            outcome.usage["completion_tokens"],
        )
    # and a record exists for every call the upstream served, none for a call that never reached it
    client_ids = {o.request_id for o in outcomes}
    served = client_ids & set(cluster.upstream.behaviour.request_ids)
    assert set(books.records(client_ids)) == served

    # rollups and durable quota usage hold exactly the records: nothing forgotten, nothing counted twice
    books.assert_rollups_equal_records()
    books.assert_quota_usage_equals_records(tenant_id)
    # and the counters Redis rebuilt equal the database once nothing is in flight
    books.wait_settled(tenant_id)
    books.assert_counters_match_database(tenant_id, key_id)


def test_redis_unreachable_during_load_fails_closed_then_reconciles_what_it_could_not_settle(cluster) -> None:
    """Redis frozen (SIGSTOP: connections hang, then time out), then back with its data: calls in flight could not
    settle (their records went straight to the database), and calls sent while it was frozen may be applied by
    Redis when it wakes up although their clients gave up. The reconciliation task sorts both out."""
    model, secret = cluster.data["quick"]["model"], cluster.data["frozen_key"]["secret"]
    tenant_id, key_id = cluster.data["frozen_key"]["tenant_id"], cluster.data["frozen_key"]["key_id"]
    open_url, closed_url = cluster.urls

    load = Load(cluster.urls, secret, model, clients=6).start()
    try:
        load.wait_for(lambda outcomes: sum(o.ok for o in outcomes) >= 30, what="30 answered calls")

        # when Redis stops answering
        frozen = time.monotonic()
        cluster.redis.freeze()
        try:
            load.wait_for(
                lambda outcomes: sum(1 for o in outcomes if o.started > frozen + 0.5 and o.status == 503) >= 6,
                what="calls refused while Redis does not answer",
            )
            opened = graphql(open_url, secret)
            assert opened.status_code == 200, opened.text
            refused = graphql(closed_url, secret)
            assert refused.status_code == 503, refused.text
        finally:
            cluster.redis.thaw()
        back = time.monotonic()

        for url in cluster.urls:
            load.wait_for(lambda outcomes, url=url: _resumed(outcomes, back, url), what=f"{url} serving again")
        load.wait_for(lambda outcomes: sum(1 for o in outcomes if o.started > back and o.ok) >= 30, what="traffic")
    finally:
        outcomes = load.stop()

    assert_served_or_unavailable(outcomes, "service_unavailable")

    # the reservations Redis kept for calls it could not settle expire (2 s SLA + 30 s) and are reconciled
    books = cluster.books
    books.wait_settled(tenant_id, seconds=150)
    books.wait_drained()
    answered = {o.request_id: o for o in outcomes if o.ok}
    records = books.wait_for_records(answered, seconds=30)
    missing = set(answered) - set(records)
    assert not missing, f"{len(missing)} of {len(answered)} answered calls have no usage record"
    assert all(records[rid].status_code == 200 for rid in answered)
    client_ids = {o.request_id for o in outcomes}
    assert set(books.records(client_ids)) == client_ids & set(cluster.upstream.behaviour.request_ids)
    books.assert_rollups_equal_records()
    books.assert_quota_usage_equals_records(tenant_id)
    books.assert_counters_match_database(tenant_id, key_id)
