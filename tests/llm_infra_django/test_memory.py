"""The per-process stand-ins for Redis: keyed values that expire as Redis keys do, and one call that clears them all."""

from __future__ import annotations

import httpx
import pytest

from llm_infra_django.errors import CircuitOpenError
from llm_infra_django.memory import LocalStore, clear_all
from llm_infra_django.ratelimit.limiter import Limiter
from llm_infra_django.resilience import CircuitBreaker, State


def refused() -> None:
    raise httpx.ConnectError("connection refused")


def test_a_value_expires_when_its_time_is_reached() -> None:
    # given
    store: LocalStore[int] = LocalStore()
    with store.lock:
        store.put("k", 1, expires_at=10)

        # when / then
        assert store.value("k", 9.999) == 1
        assert store.value("k", 10) is None
        assert store.value("missing", 0) is None


def test_a_value_set_without_an_expiry_keeps_the_one_it_had() -> None:
    # given
    store: LocalStore[int] = LocalStore()
    with store.lock:
        store.put("k", 1, expires_at=10)

        # when
        store.put("k", 2)

        # then
        assert store.value("k", 9) == 2
        assert store.value("k", 10) is None


def test_a_sweep_drops_the_expired_values_only() -> None:
    # given
    store: LocalStore[str] = LocalStore()
    with store.lock:
        store.put("old", "a", expires_at=5)
        store.put("new", "b", expires_at=50)

        # when
        store.sweep(5)

    # then
    assert len(store) == 1
    assert store.value("new", 5) == "b"


def test_clear_all_clears_every_local_state_of_the_process(settings, unique_prefix: str) -> None:
    # given no Redis: a store holding a value, a limiter's local state, a breaker opened in memory
    settings.LLM_INFRA = {"TRACING": {"ENABLED": False}}
    store: LocalStore[int] = LocalStore()
    with store.lock:
        store.put("k", 1, expires_at=float("inf"))
    limiter = Limiter()
    assert limiter.hit(f"{unique_prefix}:a", "1/min").allowed
    assert not limiter.hit(f"{unique_prefix}:a", "1/min").allowed
    circuit = CircuitBreaker(f"{unique_prefix}:svc", failure_threshold=1)
    with pytest.raises(httpx.ConnectError):
        circuit.call(refused)
    with pytest.raises(CircuitOpenError):
        circuit.call(lambda: None)

    # when
    clear_all()

    # then each starts afresh, as in a new process
    assert len(store) == 0
    assert len(limiter.local) == 0
    assert limiter.hit(f"{unique_prefix}:a", "1/min").allowed
    assert circuit.state() is State.CLOSED
    assert circuit.call(lambda: "called") == "called"
