"""Circuit breaker: thresholds, half-open probes, state shared across processes through Redis, fallback to memory."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import override_settings
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from llm_infra_django.errors import CircuitOpenError
from llm_infra_django.resilience import CircuitBreaker, State, breaker
from llm_infra_django.responses import envelope_response
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
RESET = 0.5  # seconds; the Redis variant runs on Redis's clock, so the tests really wait this long


def refused() -> None:
    raise httpx.ConnectError("connection refused")


def not_found() -> None:
    request = httpx.Request("GET", "http://upstream.test/")
    raise httpx.HTTPStatusError("404", request=request, response=httpx.Response(404, request=request))


def fail_times(circuit: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        with pytest.raises(httpx.ConnectError):
            circuit.call(refused)


def infra(redis_url: str | None = None, **circuit: Any) -> dict[str, Any]:
    options: dict[str, Any] = {"TRACING": {"ENABLED": False}}
    if redis_url:
        options["REDIS_URL"] = redis_url
    if circuit:
        options["CIRCUIT_BREAKER"] = circuit
    return options


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each shared test runs on the in-memory state and on Redis (REDIS_URL)."""
    redis_url = os.environ.get("REDIS_URL") if request.param == "redis" else None
    with override_settings(LLM_INFRA=infra(redis_url, RESET_TIMEOUT_S=RESET)):
        yield request.param


@pytest.fixture
def circuit(backend: str, unique_prefix: str) -> Iterator[CircuitBreaker]:
    """A fresh breaker; its Redis keys are deleted afterwards."""
    created = CircuitBreaker(f"{unique_prefix}:svc")
    yield created
    created.reset()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_opens_after_five_consecutive_failures(circuit: CircuitBreaker) -> None:
    # given four failures, the circuit is still closed
    fail_times(circuit, 4)
    assert circuit.state() is State.CLOSED

    # when a fifth failure comes
    fail_times(circuit, 1)

    # then it is open and refuses calls without making them, saying how long to wait
    assert circuit.state() is State.OPEN
    called = []
    with pytest.raises(CircuitOpenError) as caught:
        circuit.call(called.append, 1)
    assert called == []
    assert 0 < caught.value.retry_after <= RESET
    assert caught.value.details == {"circuit": circuit.name}


def test_a_success_resets_the_consecutive_count(circuit: CircuitBreaker) -> None:
    # given four failures, one success, four failures
    fail_times(circuit, 4)
    assert circuit.call(lambda: "ok") == "ok"
    fail_times(circuit, 4)

    # then the circuit is still closed
    assert circuit.state() is State.CLOSED


def test_client_errors_do_not_count(circuit: CircuitBreaker) -> None:
    # given ten 404 answers
    for _ in range(10):
        with pytest.raises(httpx.HTTPStatusError):
            circuit.call(not_found)

    # then the upstream is considered alive
    assert circuit.state() is State.CLOSED


def test_which_exceptions_count_is_configurable(backend: str, unique_prefix: str) -> None:
    # given a breaker counting ValueError as a failure
    circuit = CircuitBreaker(f"{unique_prefix}:custom", is_failure=lambda exc: isinstance(exc, ValueError))

    def bad() -> None:
        raise ValueError("bad answer")

    # when five calls raise it
    for _ in range(5):
        with pytest.raises(ValueError):
            circuit.call(bad)

    # then it is open
    assert circuit.state() is State.OPEN
    circuit.reset()


def test_recovers_after_three_half_open_successes(
    circuit: CircuitBreaker, log_events: Callable[[str], list[dict[str, Any]]], span_exporter: InMemorySpanExporter
) -> None:
    # given an open circuit whose reset timeout has passed
    opened_before = sample("llm_infra_circuit_transitions_total", {"name": circuit.name, "state": "open"})
    fail_times(circuit, 5)
    time.sleep(RESET + 0.1)

    # when three probes succeed
    results = [circuit.call(lambda: "ok") for _ in range(3)]

    # then it is closed again, and every change was logged, traced and counted
    assert results == ["ok"] * 3
    assert circuit.state() is State.CLOSED
    changes = [(line["previous"], line["state"]) for line in log_events("circuit_state_changed")]
    assert changes == [("closed", "open"), ("open", "half_open"), ("half_open", "closed")]
    spans = [s for s in span_exporter.get_finished_spans() if s.name == "circuit_breaker.state_change"]
    assert [s.attributes["circuit.state"] for s in spans] == ["open", "half_open", "closed"]
    assert {s.attributes["circuit.name"] for s in spans} == {circuit.name}
    opened = sample("llm_infra_circuit_transitions_total", {"name": circuit.name, "state": "open"})
    assert opened - opened_before == 1
    assert sample("llm_infra_circuit_state", {"name": circuit.name}) == 0


def test_state_gauge_reads_two_when_open(circuit: CircuitBreaker) -> None:
    # when the circuit opens, then the gauge says 2
    fail_times(circuit, 5)
    assert sample("llm_infra_circuit_state", {"name": circuit.name}) == 2


def test_a_half_open_failure_reopens(circuit: CircuitBreaker) -> None:
    # given a half-open circuit with one successful probe
    fail_times(circuit, 5)
    time.sleep(RESET + 0.1)
    circuit.call(lambda: None)
    assert circuit.state() is State.HALF_OPEN

    # when the next probe fails
    fail_times(circuit, 1)

    # then it is open again for a full reset timeout
    assert circuit.state() is State.OPEN
    with pytest.raises(CircuitOpenError) as caught:
        circuit.call(lambda: None)
    assert 0 < caught.value.retry_after <= RESET


def test_half_open_admits_at_most_the_probe_limit_concurrently(circuit: CircuitBreaker) -> None:
    # given a half-open circuit (HALF_OPEN_MAX_CALLS = 3) and eight concurrent callers
    fail_times(circuit, 5)
    time.sleep(RESET + 0.1)
    callers = 8
    everyone_tried = threading.Barrier(callers + 1, timeout=10)
    finish = threading.Event()
    admitted: list[int] = []
    refused_after: list[float] = []
    lock = threading.Lock()

    def probe(index: int) -> None:
        def hold() -> None:
            with lock:
                admitted.append(index)
            everyone_tried.wait()
            finish.wait(10)

        try:
            circuit.call(hold)
        except CircuitOpenError as exc:
            with lock:
                refused_after.append(exc.retry_after)
            everyone_tried.wait()

    threads = [threading.Thread(target=probe, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()

    # when every caller has been admitted or refused while the probes are still running
    everyone_tried.wait()
    in_flight = len(admitted)
    finish.set()
    for thread in threads:
        thread.join(10)

    # then exactly three probes went through, the others were refused, and the three successes closed it
    assert in_flight == 3
    assert len(refused_after) == callers - 3
    assert all(wait == 1.0 for wait in refused_after)
    assert circuit.state() is State.CLOSED


def test_a_result_from_before_the_circuit_opened_is_ignored(circuit: CircuitBreaker) -> None:
    # given a slow call admitted while closed, then the circuit opens and becomes half-open with one probe
    slow = circuit.guard()
    slow.__enter__()
    fail_times(circuit, 5)
    time.sleep(RESET + 0.1)
    probe = circuit.guard()
    probe.__enter__()

    # when the slow call finally fails
    slow.__exit__(httpx.ReadTimeout, httpx.ReadTimeout("late"), None)

    # then its stale failure does not reopen the half-open circuit
    assert circuit.state() is State.HALF_OPEN
    probe.__exit__(None, None, None)


async def test_async_api_shares_the_same_state(circuit: CircuitBreaker) -> None:
    # given five failures through the async API
    async def refused_async() -> None:
        raise httpx.ConnectError("connection refused")

    for _ in range(5):
        with pytest.raises(httpx.ConnectError):
            await circuit.acall(refused_async)

    # then the circuit is open for sync and async callers
    assert circuit.state() is State.OPEN
    with pytest.raises(CircuitOpenError):
        async with circuit.guard():
            pass

    # and after the reset timeout, async probes close it
    await asyncio.sleep(RESET + 0.1)

    async def ok() -> str:
        return "ok"

    assert [await circuit.acall(ok) for _ in range(3)] == ["ok"] * 3
    assert circuit.state() is State.CLOSED


async def test_a_cancelled_probe_frees_its_slot_without_counting(backend: str, unique_prefix: str) -> None:
    # given a half-open circuit allowing one probe at a time
    circuit = CircuitBreaker(f"{unique_prefix}:cancel", half_open_max_calls=1)
    fail_times(circuit, 5)
    await asyncio.sleep(RESET + 0.1)
    started = asyncio.Event()

    async def hang() -> None:
        started.set()
        await asyncio.sleep(10)

    # when the probe is cancelled
    task = asyncio.ensure_future(circuit.acall(hang))
    await started.wait()
    with pytest.raises(CircuitOpenError):
        await circuit.acall(asyncio.sleep, 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    # then the slot is free again and the circuit is still half-open
    assert await circuit.acall(asyncio.sleep, 0, "probe") == "probe"
    assert circuit.state() is State.HALF_OPEN
    circuit.reset()


@pytest.mark.redis
def test_two_processes_share_the_state(redis_url: str, unique_prefix: str) -> None:
    # given a breaker name and another OS process failing on it until it opens
    name = f"{unique_prefix}:shared"
    child = run_child(name, redis_url, "fail")
    assert child["pid"] != os.getpid()
    assert child["failures"] == 5
    assert child["state"] == "open"

    # when this process calls through the breaker of the same name
    with override_settings(LLM_INFRA=infra(redis_url)):
        circuit = breaker(name)
        called = []
        with pytest.raises(CircuitOpenError) as caught:
            circuit.call(called.append, 1)

        # then it was refused here too, with the remaining open time, and a third process is refused as well
        assert called == []
        assert 25 < caught.value.retry_after <= 30
        third = run_child(name, redis_url, "call")
        assert third["admitted"] is False
        assert third["pid"] not in (os.getpid(), child["pid"])
        circuit.reset()


def run_child(name: str, redis_url: str, action: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.llm_infra_django.resilience.breaker_child", name, redis_url, action],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.llm_infra_django.settings"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_circuit_open_error_renders_503_with_retry_after(unique_prefix: str) -> None:
    # given an open circuit with a 30 s reset timeout
    circuit = CircuitBreaker(f"{unique_prefix}:render")
    fail_times(circuit, 5)
    with pytest.raises(CircuitOpenError) as caught:
        circuit.call(lambda: None)

    # when the error is rendered
    response = envelope_response(caught.value)

    # then it is a 503 envelope with Retry-After in whole seconds
    assert response.status_code == 503
    assert response["Retry-After"] == str(math.ceil(caught.value.retry_after)) == "30"
    body = json.loads(response.content)
    assert body["error"]["code"] == "service_unavailable"
    assert body["error"]["details"] == {"circuit": circuit.name}


def test_in_memory_state_follows_the_injected_clock(unique_prefix: str) -> None:
    # given no Redis configured and a breaker on a fake clock
    clock = FakeClock()
    circuit = breaker(f"{unique_prefix}:clock", clock=clock)
    fail_times(circuit, 5)

    # when 29 s pass, it is still open with 1 s to go
    clock.now += 29
    with pytest.raises(CircuitOpenError) as caught:
        circuit.call(lambda: None)
    assert caught.value.retry_after == pytest.approx(1.0)

    # when 30 s have passed, a probe is admitted
    clock.now += 1
    assert circuit.call(lambda: "probe") == "probe"
    assert circuit.state() is State.HALF_OPEN


def test_in_memory_probe_leases_expire(unique_prefix: str) -> None:
    # given a half-open circuit whose three probe slots were taken by calls that never finished (a killed worker)
    clock = FakeClock()
    circuit = CircuitBreaker(f"{unique_prefix}:lease", clock=clock)
    fail_times(circuit, 5)
    clock.now += 30
    for _ in range(3):
        circuit.guard().__enter__()
    with pytest.raises(CircuitOpenError):
        circuit.call(lambda: None)

    # when a reset timeout passes, then the leases have expired and a new probe is admitted
    clock.now += 30.1
    assert circuit.call(lambda: "probe") == "probe"


def test_without_redis_the_state_is_per_process(unique_prefix: str) -> None:
    # given no Redis: breaker(name) is this process's one instance
    name = f"{unique_prefix}:local"
    circuit = breaker(name)
    assert breaker(name) is circuit

    # when it opens, then the same name sees it open in this process
    fail_times(circuit, 5)
    with pytest.raises(CircuitOpenError):
        breaker(name).call(lambda: None)


def test_asking_for_a_breaker_with_other_options_is_refused(unique_prefix: str) -> None:
    # given an existing breaker, when asked for again with another threshold, then it refuses
    name = f"{unique_prefix}:opts"
    breaker(name, failure_threshold=2)
    assert breaker(name, failure_threshold=2) is breaker(name)
    with pytest.raises(ValueError, match="other options"):
        breaker(name, failure_threshold=3)


@pytest.mark.parametrize("name", ["", "a{b}", "x}"])
def test_names_with_braces_are_refused(name: str) -> None:
    # when a breaker name would break the Redis hash tag, then it is refused
    with pytest.raises(ValueError):
        CircuitBreaker(name)


def test_reset_closes_an_open_circuit(circuit: CircuitBreaker) -> None:
    # given an open circuit, when an operator resets it, then it admits calls again
    fail_times(circuit, 5)
    circuit.reset()
    assert circuit.state() is State.CLOSED
    assert circuit.call(lambda: "ok") == "ok"


def test_redis_down_falls_back_to_memory_and_logs(
    unique_prefix: str, log_events: Callable[[str], list[dict[str, Any]]]
) -> None:
    # given a Redis URL where nothing listens
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(LLM_INFRA=infra(dead)):
        circuit = CircuitBreaker(f"{unique_prefix}:down")

        # when five calls fail
        fail_times(circuit, 5)

        # then the breaker still works, on this process's state, and said why (once per interval)
        with pytest.raises(CircuitOpenError):
            circuit.call(lambda: None)
        assert circuit.state() is State.OPEN
    errors = log_events("circuit_breaker_redis_error")
    assert len(errors) == 1
    assert errors[0]["fallback"] == "memory"
    assert errors[0]["circuit"] == circuit.name
    assert "ConnectionError" in errors[0]["error"]


@pytest.mark.redis
def test_redis_failing_mid_call_records_the_result_locally(
    redis_url: str, unique_prefix: str, log_events: Callable[[str], list[dict[str, Any]]]
) -> None:
    # given a call admitted through Redis
    dead = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(LLM_INFRA=infra(redis_url)):
        circuit = CircuitBreaker(f"{unique_prefix}:mid")
        guard = circuit.guard()
        guard.__enter__()

    with override_settings(LLM_INFRA=infra(dead)):
        # when Redis is gone by the time the call fails
        guard.__exit__(httpx.ConnectError, httpx.ConnectError("refused"), None)

        # then the failure counted in this process's state: four more open the circuit locally
        assert log_events("circuit_breaker_redis_error")[0]["operation"] == "record"
        fail_times(circuit, 4)
        with pytest.raises(CircuitOpenError):
            circuit.call(lambda: None)

    # and Redis, which never heard of it, still has the circuit closed
    with override_settings(LLM_INFRA=infra(redis_url)):
        assert circuit.state() is State.CLOSED
        circuit.reset()


async def test_redis_down_async_falls_back_to_memory(unique_prefix: str) -> None:
    # given a Redis URL where nothing listens, and async callers
    dead = f"redis://127.0.0.1:{free_port()}/0"

    async def refused_async() -> None:
        raise httpx.ConnectError("connection refused")

    with override_settings(LLM_INFRA=infra(dead)):
        circuit = CircuitBreaker(f"{unique_prefix}:adown")

        # when five async calls fail
        for _ in range(5):
            with pytest.raises(httpx.ConnectError):
                await circuit.acall(refused_async)

        # then the circuit opened in this process's memory
        with pytest.raises(CircuitOpenError):
            async with circuit.guard():
                pass


def test_a_guard_tells_whether_its_call_was_a_half_open_probe(circuit: CircuitBreaker) -> None:
    # a call admitted by a closed circuit is no probe
    with circuit.guard() as guard:
        pass
    assert not guard.probe
    # once the circuit opened and its reset timeout passed, the next call is a probe
    fail_times(circuit, 5)
    time.sleep(RESET + 0.1)
    with circuit.guard() as guard:
        assert guard.probe
    assert circuit.state() is State.HALF_OPEN
