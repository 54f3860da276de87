"""The limiter on real Redis (parity with the Python cores, server time, TTLs, hash tags), in process, and when
Redis is down (fail-open vs fail-closed)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from redis.cluster import key_slot

from llm_infra_django.errors import ServiceUnavailableError
from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW, TOKEN_BUCKET, SlidingWindowLog, TokenBucket
from llm_infra_django.ratelimit.backends import _ASYNC_SCRIPTS, _SCRIPTS, LocalBackend, redis_hit, redis_keys
from llm_infra_django.ratelimit.limiter import Decision, Limiter, limiter, make_key
from llm_infra_django.ratelimit.rates import Rate
from tests.llm_infra_django.ratelimit.conftest import DEAD_REDIS_URL, infra

ALGORITHMS = [TOKEN_BUCKET, SLIDING_WINDOW]


def _decisions(scope: str, algorithm: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "llm_infra_ratelimit_decisions_total", {"scope": scope, "algorithm": algorithm, "decision": outcome}
    )
    return value or 0.0


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_limit_is_enforced_on_redis_with_headers_and_metrics(use_redis: str, algorithm: str) -> None:
    # given
    key = make_key(use_redis, "user:1")

    # when
    decisions = [limiter.hit(key, "3/min", algorithm=algorithm) for _ in range(4)]

    # then
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    denied = decisions[-1]
    assert denied.retry_after is not None and 0 < denied.retry_after <= 60
    assert abs(denied.now - time.time()) < 5, "the decision uses the Redis server clock"
    assert denied.headers()["X-RateLimit-Limit"] == "3"
    assert denied.headers()["X-RateLimit-Remaining"] == "0"
    assert int(denied.headers()["X-RateLimit-Reset"]) == denied.reset >= int(denied.now)
    assert 1 <= int(denied.headers()["Retry-After"]) <= 60
    assert _decisions(use_redis, algorithm, "allowed") == 3
    assert _decisions(use_redis, algorithm, "denied") == 1


@pytest.mark.redis
def test_token_bucket_cost_and_retry_after_follow_the_refill_rate(use_redis: str) -> None:
    # given: 10 tokens per 100 s = 0.1 token/s
    key = make_key(use_redis, "tokens")
    limiter.hit(key, Rate(limit=10, period=100), cost=8)

    # when
    denied = limiter.hit(key, Rate(limit=10, period=100), cost=5)

    # then: 3 tokens missing at 0.1/s is 30 s
    assert not denied.allowed
    assert denied.remaining == 2
    assert denied.retry_after == pytest.approx(30, abs=0.5)
    assert denied.reset_after == pytest.approx(80, abs=0.5)


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_keys_share_a_cluster_slot_and_expire_when_idle(use_redis: str, redis_client: Any, algorithm: str) -> None:
    # given
    key = make_key(use_redis, "ttl")

    # when
    limiter.hit(key, "5/min", algorithm=algorithm)

    # then
    names = redis_keys(algorithm, key)
    assert all(name.startswith(f"rl:{{{key}}}") for name in names)
    assert len({key_slot(name.encode()) for name in names}) == 1
    for name in names:
        assert 0 < redis_client.pttl(name) <= 61_000


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_denied_hit_writes_nothing(use_redis: str, redis_client: Any, algorithm: str) -> None:
    # given: the limit used up
    key = make_key(use_redis, "frozen")
    limiter.hit(key, "2/hour", cost=2, algorithm=algorithm)
    names = redis_keys(algorithm, key)
    before = [redis_client.dump(name) for name in names]

    # when
    denied = [limiter.hit(key, "2/hour", algorithm=algorithm) for _ in range(5)]

    # then
    assert not any(d.allowed for d in denied)
    assert [redis_client.dump(name) for name in names] == before


_HITS = st.lists(
    st.tuples(st.sampled_from([0, 1, 999, 50_000, 333_333, 1_500_000, 7_000_000]), st.integers(1, 8)),
    min_size=1,
    max_size=40,
)
_parity_counter = iter(range(10**9))


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
@hypothesis_settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(limit=st.integers(1, 6), period_s=st.integers(1, 5), hits=_HITS)
def test_lua_and_python_decide_identically_on_the_same_clock(
    redis_client: Any, redis_scope: str, algorithm: str, limit: int, period_s: int, hits: list[tuple[int, int]]
) -> None:
    # given
    key = make_key(redis_scope, f"parity:{next(_parity_counter)}")
    state = TokenBucket() if algorithm == TOKEN_BUCKET else SlidingWindowLog()
    now = 1_700_000_000_000_000

    for gap, cost in hits:
        now += gap

        # when
        lua = redis_hit(redis_client, algorithm, key, limit=limit, period_us=period_s * 10**6, cost=cost, now_us=now)
        python = state.hit(limit, period_s * 10**6, cost, now)

        # then
        assert lua == python
    redis_client.delete(*redis_keys(algorithm, key))


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_a_script_unknown_to_the_server_is_loaded_and_run(
    use_redis: str, algorithm: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: SHAs the server has never seen (as after a restart or failover; the shared server is not flushed)
    key = make_key(use_redis, "noscript")
    monkeypatch.setattr(_SCRIPTS[algorithm], "sha", "0" * 40)
    monkeypatch.setattr(_ASYNC_SCRIPTS[algorithm], "sha", "0" * 40)

    # when
    decisions = [limiter.hit(key, "5/min", algorithm=algorithm), await limiter.ahit(key, "5/min", algorithm=algorithm)]

    # then
    assert [(d.allowed, d.remaining) for d in decisions] == [(True, 4), (True, 3)]
    assert _SCRIPTS[algorithm].sha != "0" * 40


@pytest.mark.redis
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_async_hits_share_the_limit_with_sync_hits(use_redis: str, algorithm: str) -> None:
    # given
    key = make_key(use_redis, "async")
    limiter.hit(key, "3/min", algorithm=algorithm)

    # when
    decisions = [await limiter.ahit(key, "3/min", algorithm=algorithm) for _ in range(3)]

    # then
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[-1].retry_after is not None and decisions[-1].retry_after > 0


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_without_redis_the_limit_holds_in_process(settings: Any, scope: str, algorithm: str) -> None:
    # given: the infra test settings have no Redis (LocMem cache, no REDIS_URL)
    settings.LLM_INFRA = infra()
    key = make_key(scope, "local")

    # when
    decisions = [limiter.hit(key, "2/min", algorithm=algorithm) for _ in range(3)]

    # then
    assert [d.allowed for d in decisions] == [True, True, False]
    assert decisions[-1].headers()["X-RateLimit-Remaining"] == "0"
    assert 0 < (decisions[-1].retry_after or 0) <= 60
    assert abs(decisions[-1].now - time.time()) < 5


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_without_redis_async_hits_use_the_in_process_limiter(settings: Any, scope: str, algorithm: str) -> None:
    # given
    settings.LLM_INFRA = infra()
    key = make_key(scope, "local-async")

    # when
    decisions = [await limiter.ahit(key, "1/min", algorithm=algorithm) for _ in range(2)]

    # then
    assert [d.allowed for d in decisions] == [True, False]


def test_in_process_state_expires_like_redis_keys_and_is_swept(settings: Any) -> None:
    # given: an injected clock and a sweep on every hit
    settings.LLM_INFRA = infra()
    clock = [1_700_000_000_000_000]
    local = LocalBackend(clock=lambda: clock[0], sweep_every=1)
    injected = Limiter(local=local)
    injected.hit("s:a", "1/s")
    injected.hit("s:b", "1/s")
    assert len(local) == 2

    # when: both are full again (plus the expiry margin)
    clock[0] += 2_100_000
    decision = injected.hit("s:c", "1/s")

    # then
    assert decision.allowed
    assert len(local) == 1


def test_an_injected_clock_drives_refill(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra()
    clock = [1_700_000_000_000_000]
    injected = Limiter(clock_us=lambda: clock[0])
    key = make_key(scope, "clock")
    injected.hit(key, "2/min", cost=2)
    assert not injected.hit(key, "2/min").allowed

    # when: one token's worth of time passes
    clock[0] += 30_000_000

    # then
    assert injected.hit(key, "2/min").allowed
    assert not injected.hit(key, "2/min").allowed


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_redis_down_fails_open_by_default_and_records_an_error(settings: Any, scope: str, algorithm: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL)
    key = make_key(scope, "down")

    # when
    with structlog.testing.capture_logs() as logs:
        decision = limiter.hit(key, "1/min", algorithm=algorithm)

    # then
    assert decision.allowed and decision.error
    assert decision.outcome == "error"
    assert decision.headers() == {"X-RateLimit-Limit": "1"}
    assert _decisions(scope, algorithm, "error") == 1
    assert [log["event"] for log in logs] == ["ratelimit_backend_failed"]


def test_redis_down_fails_closed_when_the_setting_says_so(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL, THROTTLE_FAIL_OPEN=False)

    # when
    with pytest.raises(ServiceUnavailableError) as raised:
        limiter.hit(make_key(scope, "down"), "1/min")

    # then
    assert raised.value.status_code == 503
    assert raised.value.headers() == {"Retry-After": "1"}


def test_a_call_overrides_the_failure_setting_both_ways(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL, THROTTLE_FAIL_OPEN=True)
    key = make_key(scope, "down")

    # when / then: money paths pass fail_open=False
    with pytest.raises(ServiceUnavailableError):
        limiter.hit(key, "1/min", fail_open=False)
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL, THROTTLE_FAIL_OPEN=False)
    assert limiter.hit(key, "1/min", fail_open=True).error


async def test_async_redis_down_fails_open_or_closed(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL)
    key = make_key(scope, "down-async")

    # when / then
    assert (await limiter.ahit(key, "1/min")).error
    with pytest.raises(ServiceUnavailableError):
        await limiter.ahit(key, "1/min", fail_open=False)


def test_a_denial_is_logged_with_its_scope_key_and_wait(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra()
    key = make_key(scope, "user:7")
    limiter.hit(key, "1/min")

    # when
    with structlog.testing.capture_logs() as logs:
        limiter.hit(key, "1/min")

    # then
    (log,) = logs
    assert log["event"] == "ratelimit_denied"
    assert log["ratelimit_key"] == key
    assert log["scope"] == scope
    assert log["retry_after"] > 0


@pytest.mark.parametrize(
    ("rate", "cost", "algorithm"),
    [("lots/min", 1, TOKEN_BUCKET), ("5/min", 0, TOKEN_BUCKET), ("5/min", 1, "leaky_bucket")],
)
def test_invalid_arguments_are_rejected(rate: str, cost: int, algorithm: str) -> None:
    with pytest.raises(ValueError):
        limiter.hit("s:k", rate, cost, algorithm)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_cost_above_the_limit_never_fits(settings: Any, scope: str, algorithm: str) -> None:
    # given
    settings.LLM_INFRA = infra()

    # when
    decision = limiter.hit(make_key(scope, "big"), "5/min", cost=6, algorithm=algorithm)

    # then
    assert not decision.allowed
    assert decision.remaining == 5
    assert decision.retry_after == 60


def test_decision_headers_round_reset_and_retry_after_up() -> None:
    # given
    decision = Decision(allowed=False, limit=10, remaining=0, reset_after=5.2, retry_after=0.3, now=100.5)

    # when
    headers = decision.headers()

    # then
    assert headers == {
        "X-RateLimit-Limit": "10",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": "106",
        "Retry-After": "1",
    }
