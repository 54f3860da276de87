"""The rate limiter: `limiter.hit(key, rate)` → `Decision`, atomic on Redis when configured, per process otherwise."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis
import structlog
from django.core.exceptions import ImproperlyConfigured

from llm_infra_django.conf import infra_settings
from llm_infra_django.errors import ServiceUnavailableError
from llm_infra_django.metrics import RATELIMIT_DECISIONS
from llm_infra_django.ratelimit.algorithms import ALGORITHMS, TOKEN_BUCKET, Verdict
from llm_infra_django.ratelimit.backends import LocalBackend, aredis_hit, redis_hit
from llm_infra_django.ratelimit.rates import Rate, parse_rate
from llm_infra_django.redis import get_async_redis, get_redis

logger = structlog.get_logger("llm_infra.ratelimit")

# What "Redis is down" looks like: refused or reset connections, timeouts, a read-only replica after failover, OOM.
BACKEND_ERRORS: tuple[type[BaseException], ...] = (redis.exceptions.RedisError, OSError)
# Retry-After of the 503 a fail-closed limiter answers while Redis is unreachable.
FAIL_CLOSED_RETRY_AFTER = 1


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one hit. Times are seconds; `now` is the limiter's clock (Redis server time) at the decision."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # until the limit is fully available again
    retry_after: float | None = None  # when denied: until this request would be admitted
    now: float = 0.0
    error: bool = False  # Redis failed and the limiter failed open: remaining and reset are unknown

    @property
    def reset(self) -> int:
        """Unix time (whole seconds, rounded up) when the limit is fully available again."""
        return math.ceil(self.now + self.reset_after)

    @property
    def outcome(self) -> str:
        """The metrics label: allowed, denied or error."""
        return "error" if self.error else "allowed" if self.allowed else "denied"

    def headers(self) -> dict[str, str]:
        """`X-RateLimit-Limit/Remaining/Reset` (Reset as Unix time), plus `Retry-After` when denied."""
        if self.error:
            return {"X-RateLimit-Limit": str(self.limit)}
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


def make_key(scope: str, identity: str) -> str:
    """The limited key of `identity` under `scope`; the part before the first ':' labels metrics and logs."""
    return f"{scope}:{identity}"


def rate_for_scope(scope: str) -> Rate | None:
    """`LLM_INFRA["THROTTLE_RATES"][scope]`, read now (None = unlimited); a scope without an entry is a config error."""
    rates = infra_settings.THROTTLE_RATES
    if scope not in rates:
        raise ImproperlyConfigured(f"No rate for scope {scope!r} in LLM_INFRA['THROTTLE_RATES'].")
    value = rates[scope]
    return None if value is None else parse_rate(value)


class Limiter:
    """Decides hits against rates. Redis (`get_redis()`) makes limits hold across processes and hosts; without it,
    an in-process `LocalBackend` applies the same algorithms per process.

    `clock_us` (microseconds) replaces the Redis server clock and the wall clock, for tests.
    """

    def __init__(self, *, clock_us: Callable[[], int] | None = None, local: LocalBackend | None = None) -> None:
        self.clock_us = clock_us
        self.local = local if local is not None else LocalBackend()

    def hit(
        self,
        key: str,
        rate: str | Rate,
        cost: int = 1,
        algorithm: str = TOKEN_BUCKET,
        *,
        fail_open: bool | None = None,
    ) -> Decision:
        """Admit or deny `cost` units for `key` (e.g. `make_key("api", "user:42")`) under `rate` ("100/min").

        A denial consumes nothing. When Redis fails, `fail_open` (default `THROTTLE_FAIL_OPEN`) admits with
        `Decision.error` set, else raises `ServiceUnavailableError` (money paths pass `fail_open=False`).
        """
        parsed = _validate(rate, cost, algorithm)
        now_us = self.clock_us() if self.clock_us is not None else None
        client = get_redis()
        if client is None:
            verdict = self.local.hit(
                algorithm, key, limit=parsed.limit, period_us=parsed.period_us, cost=cost, now_us=now_us
            )
        else:
            try:
                verdict = redis_hit(
                    client, algorithm, key, limit=parsed.limit, period_us=parsed.period_us, cost=cost, now_us=now_us
                )
            except BACKEND_ERRORS as exc:
                return _failed(key, parsed, algorithm, fail_open, exc)
        return _decided(key, parsed, algorithm, cost, verdict)

    async def ahit(
        self,
        key: str,
        rate: str | Rate,
        cost: int = 1,
        algorithm: str = TOKEN_BUCKET,
        *,
        fail_open: bool | None = None,
    ) -> Decision:
        """`hit` for async code, on the asyncio Redis client of the running loop."""
        parsed = _validate(rate, cost, algorithm)
        now_us = self.clock_us() if self.clock_us is not None else None
        client = get_async_redis()
        if client is None:
            verdict = self.local.hit(
                algorithm, key, limit=parsed.limit, period_us=parsed.period_us, cost=cost, now_us=now_us
            )
        else:
            try:
                verdict = await aredis_hit(
                    client, algorithm, key, limit=parsed.limit, period_us=parsed.period_us, cost=cost, now_us=now_us
                )
            except BACKEND_ERRORS as exc:
                return _failed(key, parsed, algorithm, fail_open, exc)
        return _decided(key, parsed, algorithm, cost, verdict)


def _validate(rate: str | Rate, cost: int, algorithm: str) -> Rate:
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown rate limit algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    if not isinstance(cost, int) or cost < 1:
        raise ValueError(f"cost must be a positive integer, got {cost!r}")
    return parse_rate(rate)


def _scope_of(key: str) -> str:
    return key.partition(":")[0]


@lru_cache(maxsize=1024)
def _counter(scope: str, algorithm: str, outcome: str) -> Any:
    # A labelled child looked up once: `labels()` costs as much per call as the rest of the Python side of a hit.
    return RATELIMIT_DECISIONS.labels(scope, algorithm, outcome)


def _decided(key: str, rate: Rate, algorithm: str, cost: int, verdict: Verdict) -> Decision:
    decision = Decision(
        allowed=verdict.allowed,
        limit=rate.limit,
        remaining=verdict.remaining,
        reset_after=verdict.reset_after_us / 1_000_000,
        retry_after=None if verdict.allowed else verdict.retry_after_us / 1_000_000,
        now=verdict.now_us / 1_000_000,
    )
    scope = _scope_of(key)
    _counter(scope, algorithm, decision.outcome).inc()
    if not decision.allowed:
        logger.info(
            "ratelimit_denied",
            scope=scope,
            ratelimit_key=key,
            algorithm=algorithm,
            rate=str(rate),
            cost=cost,
            retry_after=decision.retry_after,
        )
    return decision


def _failed(key: str, rate: Rate, algorithm: str, fail_open: bool | None, exc: BaseException) -> Decision:
    scope = _scope_of(key)
    opened = infra_settings.THROTTLE_FAIL_OPEN if fail_open is None else fail_open
    _counter(scope, algorithm, "error").inc()
    logger.warning(
        "ratelimit_backend_failed", scope=scope, algorithm=algorithm, error=type(exc).__name__, fail_open=opened
    )
    if not opened:
        raise ServiceUnavailableError("The rate limiter is unavailable.", retry_after=FAIL_CLOSED_RETRY_AFTER) from exc
    return Decision(allowed=True, limit=rate.limit, remaining=rate.limit, reset_after=0.0, now=time.time(), error=True)


limiter = Limiter()
