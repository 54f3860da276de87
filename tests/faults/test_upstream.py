"""An upstream down, hanging, or answering garbage: its circuit opens for every server (503 + Retry-After), lets
one probe through once the reset timeout passed (half-open), and closes again when the upstream recovers;
timeouts answer 504; every call that went for the upstream has a usage record with its error status.

The processes run with a breaker of 3 failures, 2 s reset, 2 successes, 1 probe at a time (tests/faults/settings).
"""

from __future__ import annotations

import time

import pytest

from tests.faults.conftest import assert_openai_error, fault_cluster
from tests.support.cluster import LocalUpstream, wait_for
from tests.support.traffic import Outcome, burst, call_sync, chat_body

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.timeout(600)]

FAILURES_TO_OPEN = 3
RESET_SECONDS = 2.0
SUCCESSES_TO_CLOSE = 2


@pytest.fixture(scope="module")
def cluster():
    with fault_cluster("upstream") as c:
        upstreams = {name: LocalUpstream().start() for name in ("down", "hang", "garbage", "stream")}
        try:
            specs = [{"slug": name, "upstream_url": up.url, "sla_timeout_ms": 1500} for name, up in upstreams.items()]
            world = c.build(specs, [{"budget_day_usd": "1000"}])
            c.data.update(world, upstreams=upstreams, key=world["keys"][0])
            yield c
        finally:
            for upstream in upstreams.values():
                upstream.stop()


class Case:
    """One service of the cluster and the calls made to it."""

    def __init__(self, cluster, name: str) -> None:
        self.cluster = cluster
        self.upstream: LocalUpstream = cluster.data["upstreams"][name]
        self.service = cluster.data["services"][name]
        self.secret = cluster.data["key"]["secret"]
        self.outcomes: list[Outcome] = []
        self.turn = 0

    def call(self, **extra) -> Outcome:
        """One call, on each server in turn."""
        server = self.cluster.urls[self.turn % len(self.cluster.urls)]
        self.turn += 1
        outcome = call_sync(server, self.secret, chat_body(self.service["model"], **extra), timeout=60)
        self.outcomes.append(outcome)
        return outcome

    def breaker(self) -> dict[str, str]:
        raw = self.cluster.books.redis.hgetall(f"cb:{{upstream:{self.service['version_id']}}}")
        return {k.decode(): v.decode() for k, v in raw.items()}

    def wait_until_half_open_is_due(self) -> None:
        def due() -> bool:
            seconds, micros = self.cluster.books.redis.time()
            return seconds + micros / 1e6 > float(self.breaker()["opened_at"]) + RESET_SECONDS + 0.2

        wait_for(due, 30, what="the reset timeout")

    def assert_opens(self, failure_status: int, failure_code: str, **extra) -> None:
        """Calls fail with `failure_status` until the circuit opens, then both servers refuse with 503."""
        statuses = [self.call(**extra) for _ in range(FAILURES_TO_OPEN)]
        for outcome in statuses:
            assert_openai_error(outcome, failure_status, failure_code)
        assert self.breaker()["state"] == "open"
        upstream_calls = self.upstream.behaviour.requests
        for _ in self.cluster.urls:
            assert_openai_error(self.call(**extra), 503, "service_unavailable")
        assert self.upstream.behaviour.requests == upstream_calls, "an open circuit sends nothing upstream"

    def assert_recovers(self, **extra) -> None:
        """Once the reset timeout passed, one probe at a time goes through (others get 503 + Retry-After); after
        enough successes the circuit closes and every call is served."""
        self.wait_until_half_open_is_due()
        self.upstream.behaviour.delay = 1.0  # the probe takes a while, so the burst's other calls find it running
        before = self.upstream.behaviour.requests
        outcomes = burst(self.cluster.urls, self.secret, [chat_body(self.service["model"], **extra)] * 4, timeout=60)
        self.outcomes.extend(outcomes)
        self.upstream.behaviour.delay = 0.0
        assert sorted(o.status for o in outcomes) == [200, 503, 503, 503], [o.status for o in outcomes]
        for outcome in outcomes:
            if not outcome.ok:
                assert_openai_error(outcome, 503, "service_unavailable")
        assert self.upstream.behaviour.requests == before + 1, "one probe at a time"
        assert self.breaker()["state"] == "half_open"
        for _ in range(SUCCESSES_TO_CLOSE - 1):
            assert self.call(**extra).status == 200
        # A stream's success is counted when the server closes it, just after the client read its last event.
        wait_for(lambda: self.breaker()["state"] == "closed", 5, what="the circuit to close")
        for _ in range(4):
            assert self.call(**extra).status == 200

    def assert_recorded(self) -> None:
        """Each call that went for the upstream has a record with the status and error code the client saw."""
        books = self.cluster.books
        books.wait_drained()
        wanted = {o.request_id: o for o in self.outcomes}
        records = books.wait_for_records(wanted, seconds=30)
        assert set(records) == set(wanted)
        for request_id, outcome in wanted.items():
            record = records[request_id]
            expected_code = "" if outcome.ok else outcome.body["error"]["code"]
            assert (record.status_code, record.error_code) == (outcome.status, expected_code)
            if not outcome.ok:
                assert (record.prompt_tokens, record.completion_tokens, record.cost) == (0, 0, 0)


def test_an_upstream_that_is_down_opens_the_circuit_and_is_probed_back(cluster) -> None:
    case = Case(cluster, "down")
    assert case.call().status == 200

    # when the upstream goes away (connections refused, open ones closed without an answer)
    case.upstream.stop()
    case.assert_opens(502, "external_service_error")

    # when it is back
    case.upstream.start()
    case.assert_recovers()
    case.assert_recorded()


def test_a_hanging_upstream_times_out_with_504_and_opens_the_circuit(cluster) -> None:
    case = Case(cluster, "hang")
    assert case.call().status == 200

    # when the upstream stops answering (its SLA timeout is 1.5 s)
    case.upstream.behaviour.hang = True
    started = time.monotonic()
    case.assert_opens(504, "timeout")
    assert time.monotonic() - started < 60, "each call ends at the timeout, not when the upstream gives up"

    case.upstream.behaviour.hang = False
    case.assert_recovers()
    case.assert_recorded()


def test_an_upstream_answering_garbage_opens_the_circuit(cluster) -> None:
    case = Case(cluster, "garbage")
    assert case.call().status == 200

    # when the upstream answers 200 with a body that is not JSON
    case.upstream.behaviour.garbage = True
    case.assert_opens(502, "external_service_error")

    case.upstream.behaviour.garbage = False
    case.assert_recovers()
    case.assert_recorded()


def test_a_streamed_call_to_an_upstream_answering_garbage_fails_and_counts_against_the_circuit(cluster) -> None:
    case = Case(cluster, "stream")
    streamed = {"stream": True}
    assert case.call(**streamed).completed

    # when the upstream answers a streamed call with something that is not an event stream
    case.upstream.behaviour.garbage = True
    case.assert_opens(502, "external_service_error", **streamed)

    case.upstream.behaviour.garbage = False
    case.assert_recovers(**streamed)
    case.assert_recorded()


def test_the_counters_match_the_ledger_after_the_failures(cluster) -> None:
    books, key = cluster.books, cluster.data["key"]
    books.wait_drained()
    books.assert_rollups_equal_records()
    books.assert_quota_usage_equals_records(key["tenant_id"])
    books.wait_settled(key["tenant_id"])
    books.assert_counters_match_database(key["tenant_id"], key["key_id"])
