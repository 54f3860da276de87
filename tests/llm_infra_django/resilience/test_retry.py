"""Retry: what is retried, the backoff sequence and its jitter, `Retry-After`, per-attempt timeouts, asyncio."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from llm_infra_django import errors
from llm_infra_django.resilience.classify import parse_retry_after
from llm_infra_django.resilience.retry import RetryPolicy, aretry_call, retry_call, retrying

FAST = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=10.0, jitter=0.25)


def status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = httpx.Request("GET", "http://upstream.test/thing")
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


class CarriesStatus(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


def failing(exc_factory: Callable[[], BaseException], *, succeed_after: int | None = None) -> Callable[[], str]:
    """A callable raising `exc_factory()` on each call, or returning "ok" once it was called `succeed_after` times."""
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if succeed_after is not None and calls["n"] > succeed_after:
            return "ok"
        raise exc_factory()

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


RETRYABLE = {
    "connect_error": lambda: httpx.ConnectError("refused"),
    "read_timeout": lambda: httpx.ReadTimeout("slow"),
    "remote_protocol": lambda: httpx.RemoteProtocolError("dropped"),
    "connection_reset": lambda: ConnectionResetError("reset"),
    "aiohttp_refused": lambda: aiohttp.ClientConnectorError(
        ConnectionKey("upstream.example", 443, True, True, None, None, None), OSError(111, "refused")
    ),
    "aiohttp_disconnected": lambda: aiohttp.ServerDisconnectedError(),
    "aiohttp_payload": lambda: aiohttp.ClientPayloadError("cut short"),
    "builtin_timeout": lambda: TimeoutError("slow"),
    "our_timeout": lambda: errors.UpstreamTimeoutError(service="shield"),
    "our_external": lambda: errors.ExternalServiceError(service="shield"),
    "our_unavailable": lambda: errors.ServiceUnavailableError(),
    "http_408": lambda: status_error(408),
    "http_429": lambda: status_error(429),
    "http_500": lambda: status_error(500),
    "http_502": lambda: status_error(502),
    "http_503": lambda: status_error(503),
    "http_599": lambda: status_error(599),
    "carries_503": lambda: CarriesStatus(503),
}
NOT_RETRYABLE = {
    "http_400": lambda: status_error(400),
    "http_401": lambda: status_error(401),
    "http_403": lambda: status_error(403),
    "http_404": lambda: status_error(404),
    "http_409": lambda: status_error(409),
    "http_422": lambda: status_error(422),
    "carries_404": lambda: CarriesStatus(404),
    "value_error": lambda: ValueError("bug"),
    "circuit_open": lambda: errors.CircuitOpenError("upstream:x", retry_after=3),
    "our_validation": lambda: errors.ValidationError("bad"),
    "our_internal": lambda: errors.InternalError(),
}


@pytest.mark.parametrize("name", sorted(RETRYABLE))
def test_transient_errors_are_retried_until_attempts_run_out(name: str) -> None:
    # given a call that always fails with a transient error
    fn = failing(RETRYABLE[name])
    sleeps: list[float] = []

    # when it is retried
    with pytest.raises(type(RETRYABLE[name]())):
        retry_call(fn, policy=FAST, sleep=sleeps.append, random=lambda: 0.0)

    # then every attempt was made and the last error raised
    assert fn.calls["n"] == 4  # type: ignore[attr-defined]
    assert len(sleeps) == 3


@pytest.mark.parametrize("name", sorted(NOT_RETRYABLE))
def test_final_answers_are_not_retried(name: str) -> None:
    # given a call failing with a client error, a bug or an open circuit
    fn = failing(NOT_RETRYABLE[name])
    sleeps: list[float] = []

    # when it goes through retry
    with pytest.raises(type(NOT_RETRYABLE[name]())):
        retry_call(fn, policy=FAST, sleep=sleeps.append)

    # then it was called once and never slept
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert sleeps == []


def test_success_after_transient_failures_returns_the_value() -> None:
    # given a call failing twice, then answering
    fn = failing(lambda: httpx.ConnectError("refused"), succeed_after=2)

    # when it is retried
    result = retry_call(fn, policy=FAST, sleep=lambda _: None)

    # then the answer comes back after three attempts
    assert result == "ok"
    assert fn.calls["n"] == 3  # type: ignore[attr-defined]


def test_delays_double_from_the_base_and_are_capped() -> None:
    # given a policy with a 100 ms base and a 500 ms cap, and no jitter drawn
    policy = RetryPolicy(max_attempts=6, base_delay=0.1, max_delay=0.5, jitter=0.25)
    sleeps: list[float] = []

    # when every attempt fails
    with pytest.raises(httpx.ConnectError):
        retry_call(failing(lambda: httpx.ConnectError("x")), policy=policy, sleep=sleeps.append, random=lambda: 0.0)

    # then the waits are min(base·2^n, max)
    assert sleeps == pytest.approx([0.1, 0.2, 0.4, 0.5, 0.5])


def test_full_jitter_adds_a_quarter() -> None:
    # given the largest jitter draw
    sleeps: list[float] = []

    # when every attempt fails
    with pytest.raises(httpx.ConnectError):
        retry_call(failing(lambda: httpx.ConnectError("x")), policy=FAST, sleep=sleeps.append, random=lambda: 1.0)

    # then each wait is the backoff plus 25 %
    assert sleeps == pytest.approx([0.125, 0.25, 0.5])


@settings(max_examples=200, deadline=None)
@given(
    retry_number=st.integers(min_value=0, max_value=200),
    base_ms=st.integers(min_value=1, max_value=5_000),
    max_ms=st.integers(min_value=1, max_value=60_000),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    draw=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_every_delay_is_within_the_backoff_and_its_jitter(
    retry_number: int, base_ms: int, max_ms: int, jitter: float, draw: float
) -> None:
    # given any policy and any random draw
    policy = RetryPolicy(base_delay=base_ms / 1000, max_delay=max_ms / 1000, jitter=jitter)

    # when the delay of any retry is computed
    delay = policy.delay(retry_number, random=lambda: draw)

    # then it lies in [d, d·(1+jitter)) with d = min(base·2^n, max)
    expected = min(base_ms / 1000 * 2**retry_number, max_ms / 1000)
    assert expected <= delay <= expected * (1 + jitter) + 1e-12


def test_real_jitter_stays_within_bounds() -> None:
    # given the default random source
    policy = RetryPolicy(max_attempts=8, base_delay=0.01, max_delay=0.2, jitter=0.25)
    sleeps: list[float] = []

    # when every attempt fails
    with pytest.raises(httpx.ReadTimeout):
        retry_call(failing(lambda: httpx.ReadTimeout("x")), policy=policy, sleep=sleeps.append)

    # then each wait is within its bounds, and they are not all the bare backoff
    bounds = [min(0.01 * 2**n, 0.2) for n in range(7)]
    assert all(low <= wait <= low * 1.25 for low, wait in zip(bounds, sleeps, strict=True))
    assert sleeps != bounds


def test_retry_after_seconds_is_honoured() -> None:
    # given a 503 asking to come back in 2 s
    sleeps: list[float] = []
    fn = failing(lambda: status_error(503, {"Retry-After": "2"}), succeed_after=1)

    # when it is retried
    assert retry_call(fn, policy=FAST, sleep=sleeps.append, random=lambda: 0.0) == "ok"

    # then the wait is the server's, not the 100 ms backoff
    assert sleeps == [2.0]


def test_retry_after_http_date_is_honoured() -> None:
    # given a 429 whose Retry-After is an HTTP date 5 s ahead
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    sleeps: list[float] = []
    fn = failing(lambda: status_error(429, {"Retry-After": when}), succeed_after=1)

    # when it is retried
    retry_call(fn, policy=FAST, sleep=sleeps.append, random=lambda: 0.0)

    # then the wait reaches that date (HTTP dates have 1 s resolution)
    assert 3.9 <= sleeps[0] <= 5.0


def test_retry_after_is_capped_at_the_max_delay() -> None:
    # given a server asking for an hour
    sleeps: list[float] = []
    fn = failing(lambda: status_error(503, {"Retry-After": "3600"}), succeed_after=1)

    # when it is retried under a 10 s cap
    retry_call(fn, policy=FAST, sleep=sleeps.append, random=lambda: 0.0)

    # then the wait is the cap
    assert sleeps == [10.0]


def test_retry_after_attribute_of_our_errors_is_honoured() -> None:
    # given our own 503 carrying retry_after
    sleeps: list[float] = []
    fn = failing(lambda: errors.ServiceUnavailableError(retry_after=1.5), succeed_after=1)

    # when it is retried
    retry_call(fn, policy=FAST, sleep=sleeps.append, random=lambda: 0.0)

    # then that wait is used
    assert sleeps == [1.5]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("7", 7.0), ("0", 0.0), ("-3", 0.0), ("1.5", 1.5), ("soon", None), ("", None), (None, None), ("nan", None)],
)
def test_parse_retry_after_values(value: str | None, expected: float | None) -> None:
    # when a Retry-After value is parsed, then it gives seconds or None
    assert parse_retry_after(value) == expected


def test_parse_retry_after_date_in_the_past_is_zero() -> None:
    # given a date in the past, when parsed, then there is nothing to wait
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so that hung attempts (abandoned threads) finish."""
    event = threading.Event()
    yield event
    event.set()


def test_per_attempt_timeout_abandons_a_hung_attempt_and_retries(release: threading.Event) -> None:
    # given a call whose first attempt hangs and whose second answers at once
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            release.wait(10)
        return "ok"

    policy = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01, attempt_timeout=0.05)

    # when it is retried with a 50 ms attempt timeout
    started = time.monotonic()
    result = retry_call(fn, policy=policy, service="slow")

    # then the hung attempt was given up quickly and the second one answered
    assert result == "ok"
    assert calls["n"] == 2
    assert time.monotonic() - started < 2


def test_every_attempt_timing_out_raises_our_504(release: threading.Event) -> None:
    # given a call that always hangs
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01, attempt_timeout=0.05)

    # when it is retried
    with pytest.raises(errors.UpstreamTimeoutError) as caught:
        retry_call(lambda: release.wait(10), policy=policy, service="slow")

    # then our UpstreamTimeoutError (504) names the service
    assert caught.value.status_code == 504
    assert caught.value.details["service"] == "slow"


def test_attempt_timeout_from_settings_is_read_at_call_time(release: threading.Event) -> None:
    # given ATTEMPT_TIMEOUT_MS set after import
    settings_override = {
        "TRACING": {"ENABLED": False},
        "RETRY": {"MAX_ATTEMPTS": 2, "BASE_DELAY_MS": 1, "ATTEMPT_TIMEOUT_MS": 50},
    }

    # when a hanging call is retried with the settings' policy
    with override_settings(LLM_INFRA=settings_override), pytest.raises(errors.UpstreamTimeoutError):
        retry_call(lambda: release.wait(10))


def test_settings_are_read_at_call_time() -> None:
    # given MAX_ATTEMPTS overridden to 2
    fn = failing(lambda: httpx.ConnectError("x"))

    # when retried without an explicit policy
    options = {"TRACING": {"ENABLED": False}, "RETRY": {"MAX_ATTEMPTS": 2}}
    with override_settings(LLM_INFRA=options), pytest.raises(httpx.ConnectError):
        retry_call(fn, sleep=lambda _: None)

    # then two attempts were made
    assert fn.calls["n"] == 2  # type: ignore[attr-defined]


def test_policy_overrides_on_top_of_settings() -> None:
    # given settings with 4 attempts, when a policy overrides one field
    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}, "RETRY": {"BASE_DELAY_MS": 250}}):
        policy = RetryPolicy.from_settings(max_attempts=1)

    # then the override wins and the rest comes from settings
    assert policy.max_attempts == 1
    assert policy.base_delay == 0.25
    assert policy.max_delay == 10.0


def test_each_retry_is_logged_as_an_external_call(log_events: Callable[[str], list[dict[str, Any]]]) -> None:
    # given a call failing twice with 503
    fn = failing(lambda: status_error(503), succeed_after=2)

    # when it is retried
    retry_call(fn, policy=FAST, service="registry", operation="lookup", sleep=lambda _: None, random=lambda: 0.0)

    # then each retry is one external_call line with outcome "retry"
    lines = [line for line in log_events("external_call") if line["outcome"] == "retry"]
    assert [line["attempt"] for line in lines] == [1, 2]
    assert {line["service"] for line in lines} == {"registry"}
    assert {line["operation"] for line in lines} == {"lookup"}
    assert {line["status"] for line in lines} == {503}
    assert [line["retry_in_ms"] for line in lines] == [100.0, 200.0]


def test_decorator_retries_a_sync_function() -> None:
    # given a decorated function failing once
    calls = {"n": 0}

    @retrying(policy=RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.001), service="x")
    def flaky(value: int) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ConnectError("x")
        return value * 2

    # when it is called, then it answers after the retry
    assert flaky(21) == 42
    assert calls["n"] == 2


async def test_async_retry_uses_the_async_sleep_and_backoff() -> None:
    # given an async call failing twice
    calls = {"n": 0}
    sleeps: list[float] = []

    async def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise status_error(502)
        return "ok"

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    # when it is retried
    result = await aretry_call(fn, policy=FAST, sleep=sleep, random=lambda: 0.0)

    # then it answered after the same backoff as the sync variant
    assert result == "ok"
    assert sleeps == pytest.approx([0.1, 0.2])


async def test_async_does_not_retry_client_errors() -> None:
    # given an async call answered with 404
    calls = {"n": 0}

    async def fn() -> str:
        calls["n"] += 1
        raise status_error(404)

    # when it is retried, then it is called once
    with pytest.raises(httpx.HTTPStatusError):
        await aretry_call(fn, policy=FAST)
    assert calls["n"] == 1


async def test_async_attempt_timeout_cancels_the_attempt() -> None:
    # given an async call whose first attempt hangs
    calls = {"n": 0}
    cancelled = asyncio.Event()

    async def fn() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                cancelled.set()
                raise
        return "ok"

    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001, attempt_timeout=0.05)

    # when it is retried with a 50 ms attempt timeout
    result = await aretry_call(fn, policy=policy)

    # then the first attempt was cancelled and the second answered
    assert result == "ok"
    assert cancelled.is_set()


async def test_async_every_attempt_timing_out_raises_our_504() -> None:
    # given an async call that always hangs
    policy = RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001, attempt_timeout=0.02)

    # when it is retried, then our 504 comes out
    with pytest.raises(errors.UpstreamTimeoutError):
        await aretry_call(lambda: asyncio.sleep(10), policy=policy, service="slow")


async def test_async_decorator() -> None:
    # given a decorated coroutine function failing once
    calls = {"n": 0}

    @retrying(policy=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.001))
    async def flaky() -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise httpx.ReadTimeout("x")
        return "ok"

    # when awaited, then it answers after one retry
    assert await flaky() == "ok"
    assert calls["n"] == 2
