"""Retry with capped exponential backoff, jitter, `Retry-After` and per-attempt timeouts, built on tenacity."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import dataclasses
import functools
import inspect
import random as _random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from llm_infra_django import errors
from llm_infra_django.conf import infra_settings
from llm_infra_django.logging import log_external_call
from llm_infra_django.resilience.classify import is_retryable, retry_after_of, status_of

__all__ = ["RetryPolicy", "aretry_call", "retry_call", "retrying"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# 2**64 · any sane base delay already exceeds any cap; bounding the exponent keeps the float finite.
_MAX_EXPONENT = 64


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry. Delays are in seconds; `attempt_timeout` None = no per-attempt limit."""

    max_attempts: int = 4
    base_delay: float = 0.1
    max_delay: float = 10.0
    jitter: float = 0.25
    attempt_timeout: float | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> RetryPolicy:
        """The policy of `LLM_INFRA["RETRY"]` as it is now, with `overrides` (field names, seconds) on top."""
        options = infra_settings.RETRY
        attempt_timeout_ms = options.get("ATTEMPT_TIMEOUT_MS")
        values: dict[str, Any] = {
            "max_attempts": int(options["MAX_ATTEMPTS"]),
            "base_delay": float(options["BASE_DELAY_MS"]) / 1000,
            "max_delay": float(options["MAX_DELAY_MS"]) / 1000,
            "jitter": float(options["JITTER"]),
            "attempt_timeout": float(attempt_timeout_ms) / 1000 if attempt_timeout_ms else None,
        }
        values.update(overrides)
        return cls(**values)

    def backoff(self, retry_number: int) -> float:
        """The delay before retry `retry_number` (0 = the first retry), before jitter: `min(base·2^n, max)`."""
        return min(self.base_delay * 2 ** min(max(retry_number, 0), _MAX_EXPONENT), self.max_delay)

    def delay(
        self, retry_number: int, *, retry_after: float | None = None, random: Callable[[], float] = _random.random
    ) -> float:
        """The wait before retry `retry_number`: backoff plus 0 to `jitter` of it, never shorter than `Retry-After`.

        `retry_after` (the server's request) is honoured up to `max_delay`; the jittered backoff may exceed
        `max_delay` by at most the jitter fraction, which keeps capped clients from retrying in lockstep.
        """
        backoff = self.backoff(retry_number)
        jittered = backoff + backoff * self.jitter * random()
        if retry_after is not None:
            return max(jittered, min(retry_after, self.max_delay))
        return jittered


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy | None = None,
    service: str = "unknown",
    operation: str = "call",
    retry_on: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], None] = time.sleep,
    random: Callable[[], float] = _random.random,
) -> T:
    """Call `fn()` until it succeeds, raises a non-retryable error or runs out of attempts (the last error is raised).

    `policy` defaults to `RetryPolicy.from_settings()` read now. With `attempt_timeout`, each attempt runs in a
    helper thread and is abandoned (not interrupted) past its deadline, raising our 504 `UpstreamTimeoutError`; prefer
    the callee's own timeouts (httpx) for I/O and keep this for calls that have none.
    """
    policy = policy or RetryPolicy.from_settings()
    started = [time.monotonic()]

    def attempt() -> T:
        started[0] = time.monotonic()
        if policy.attempt_timeout is None:
            return fn()
        return _call_with_deadline(fn, policy.attempt_timeout, service=service, operation=operation)

    retrying = Retrying(sleep=sleep, **_tenacity_options(policy, service, operation, retry_on, random, started))
    return retrying(attempt)


async def aretry_call(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy | None = None,
    service: str = "unknown",
    operation: str = "call",
    retry_on: Callable[[BaseException], bool] = is_retryable,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    random: Callable[[], float] = _random.random,
) -> T:
    """The asyncio twin of `retry_call`: `fn()` makes a fresh awaitable per attempt; a late attempt is cancelled."""
    policy = policy or RetryPolicy.from_settings()
    started = [time.monotonic()]

    async def attempt() -> T:
        started[0] = time.monotonic()
        if policy.attempt_timeout is None:
            return await fn()
        deadline = asyncio.timeout(policy.attempt_timeout)
        try:
            async with deadline:
                return await fn()
        except TimeoutError:  # asyncio's deadline, or one raised by `fn`
            if deadline.expired():
                raise _attempt_timeout(policy.attempt_timeout, service, operation) from None
            raise

    retrying = AsyncRetrying(sleep=sleep, **_tenacity_options(policy, service, operation, retry_on, random, started))
    return await retrying(attempt)


def retrying(
    *,
    policy: RetryPolicy | None = None,
    service: str = "unknown",
    operation: str | None = None,
    retry_on: Callable[[BaseException], bool] = is_retryable,
) -> Callable[[F], F]:
    """Decorator form of `retry_call`/`aretry_call` (chosen by whether the function is a coroutine function).

    Without `policy`, the settings are read at each call, so `override_settings` applies.
    """

    def decorate(func: F) -> F:
        name = operation or func.__qualname__
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return await aretry_call(
                    lambda: func(*args, **kwargs), policy=policy, service=service, operation=name, retry_on=retry_on
                )

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return retry_call(
                lambda: func(*args, **kwargs), policy=policy, service=service, operation=name, retry_on=retry_on
            )

        return cast(F, wrapper)

    return decorate


def _tenacity_options(
    policy: RetryPolicy,
    service: str,
    operation: str,
    retry_on: Callable[[BaseException], bool],
    random: Callable[[], float],
    started: list[float],
) -> dict[str, Any]:
    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = retry_after_of(exc) if exc is not None else None
        return policy.delay(state.attempt_number - 1, retry_after=retry_after, random=random)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log_external_call(
            service=service,
            operation=operation,
            duration_ms=(time.monotonic() - started[0]) * 1000,
            outcome="retry",
            status=status_of(exc) if exc is not None else None,
            attempt=state.attempt_number,
            error=f"{type(exc).__name__}: {exc}" if exc is not None else None,
            retry_in_ms=round((state.upcoming_sleep or 0.0) * 1000, 3),
        )

    return {
        "stop": stop_after_attempt(max(1, policy.max_attempts)),
        "wait": wait,
        "retry": retry_if_exception(retry_on),
        "before_sleep": before_sleep,
        "reraise": True,
    }


def _attempt_timeout(seconds: float, service: str, operation: str) -> errors.UpstreamTimeoutError:
    return errors.UpstreamTimeoutError(f"{service} {operation}: the attempt exceeded {seconds:g} s.", service=service)


def _call_with_deadline(fn: Callable[[], T], timeout: float, *, service: str, operation: str) -> T:
    """Run `fn` in a daemon thread (with the caller's context variables) and wait at most `timeout` seconds."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    context = contextvars.copy_context()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            result = context.run(fn)
        except BaseException as exc:  # handed to the waiting caller, whatever it is
            future.set_exception(exc)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=f"retry-attempt:{service}", daemon=True).start()
    done, _ = concurrent.futures.wait([future], timeout=timeout)
    if not done:
        raise _attempt_timeout(timeout, service, operation)
    return future.result()
