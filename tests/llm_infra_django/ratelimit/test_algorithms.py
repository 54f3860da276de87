"""Property tests of the pure-Python cores with an injected clock: limits hold, denials are free and exact."""

from __future__ import annotations

import copy
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from llm_infra_django.ratelimit.algorithms import SlidingWindowLog, TokenBucket, Verdict

START_US = 1_700_000_000_000_000

limits = st.integers(min_value=1, max_value=20)
periods_us = st.integers(min_value=1, max_value=5_000_000)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int]]]:
    """A limit, a period and a sequence of (absolute time µs, cost) hits on a non-decreasing clock."""
    limit = draw(limits)
    period_us = draw(periods_us)
    gaps = st.one_of(st.just(0), st.integers(0, period_us // max(limit, 1) + 1), st.integers(0, 2 * period_us))
    steps = draw(st.lists(st.tuples(gaps, st.integers(1, limit + 2)), min_size=1, max_size=60))
    now, hits = START_US, []
    for gap, cost in steps:
        now += gap
        hits.append((now, cost))
    return limit, period_us, hits


@given(scenarios())
def test_token_bucket_never_exceeds_capacity_nor_burst_plus_refill(scenario) -> None:
    # given
    limit, period_us, hits = scenario
    bucket = TokenBucket()
    admitted: list[tuple[int, int]] = []

    # when
    for now, cost in hits:
        verdict = bucket.hit(limit, period_us, cost, now)
        if verdict.allowed:
            admitted.append((now, cost))

        # then
        assert bucket.tokens is None or 0 <= bucket.tokens <= limit
        assert 0 <= verdict.remaining <= limit
    for i, (start, _) in enumerate(admitted):
        for j in range(i, len(admitted)):
            end = admitted[j][0]
            spent = sum(cost for _, cost in admitted[i : j + 1])
            assert spent <= limit + Fraction(end - start) * limit / period_us + Fraction(1, 10**6)


@given(scenarios())
def test_token_bucket_denial_consumes_nothing_and_retry_after_is_the_exact_wait(scenario) -> None:
    # given
    limit, period_us, hits = scenario
    bucket = TokenBucket()

    for now, cost in hits:
        before = (bucket.tokens, bucket.updated_us)
        probe = copy.deepcopy(bucket)

        # when
        verdict = bucket.hit(limit, period_us, cost, now)

        # then
        if verdict.allowed:
            assert verdict.retry_after_us == 0
            continue
        assert (bucket.tokens, bucket.updated_us) == before
        if cost > limit:
            assert verdict.retry_after_us == period_us
            continue
        assert bucket.tokens is not None
        elapsed = verdict.now_us - bucket.updated_us
        exact_tokens = min(Fraction(limit), Fraction(bucket.tokens) + Fraction(elapsed * limit, period_us))
        exact_wait = (cost - exact_tokens) * period_us / limit
        assert exact_wait - 1 <= verdict.retry_after_us <= exact_wait + 2
        assert probe.hit(limit, period_us, cost, verdict.now_us + verdict.retry_after_us).allowed


def _in_window(admitted: list[tuple[int, int]], now: int, period_us: int) -> int:
    return sum(cost for at, cost in admitted if now - period_us < at <= now)


@given(scenarios())
def test_sliding_window_never_admits_more_than_the_limit_in_any_window(scenario) -> None:
    # given
    limit, period_us, hits = scenario
    window = SlidingWindowLog()

    # when
    admitted = [(now, cost) for now, cost in hits if window.hit(limit, period_us, cost, now).allowed]

    # then
    for end, _ in admitted:
        assert _in_window(admitted, end, period_us) <= limit


@given(scenarios())
def test_sliding_window_admits_exactly_when_the_admitted_hits_leave_room(scenario) -> None:
    # given: an oracle that knows only the admitted hits, so rejected ones must never count
    limit, period_us, hits = scenario
    window = SlidingWindowLog()
    admitted: list[tuple[int, int]] = []

    for now, cost in hits:
        used = _in_window(admitted, now, period_us)

        # when
        verdict = window.hit(limit, period_us, cost, now)

        # then
        assert verdict.allowed == (used + cost <= limit)
        if verdict.allowed:
            admitted.append((now, cost))
            used += cost
        assert verdict.remaining == max(0, limit - used)


@given(scenarios())
def test_sliding_window_retry_after_is_the_earliest_admitting_time(scenario) -> None:
    # given
    limit, period_us, hits = scenario
    window = SlidingWindowLog()

    for now, cost in hits:
        probe = copy.deepcopy(window)

        # when
        verdict: Verdict = window.hit(limit, period_us, cost, now)

        # then
        if verdict.allowed or cost > limit:
            assert verdict.retry_after_us == (0 if verdict.allowed else period_us)
            continue
        assert verdict.retry_after_us >= 1
        assert not copy.deepcopy(probe).hit(limit, period_us, cost, now + verdict.retry_after_us - 1).allowed
        assert probe.hit(limit, period_us, cost, now + verdict.retry_after_us).allowed


@given(limits, periods_us, st.integers(0, 10**9))
def test_a_clock_stepping_back_refills_nothing(limit, period_us, step_back) -> None:
    # given: an empty bucket
    bucket = TokenBucket()
    bucket.hit(limit, period_us, limit, START_US)

    # when
    verdict = bucket.hit(limit, period_us, 1, START_US - step_back)

    # then
    assert not verdict.allowed
    assert verdict.now_us == START_US
