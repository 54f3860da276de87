"""Where limiter state lives: Redis (one cached Lua script call per decision) or this process (a locked dict)."""

from __future__ import annotations

import time
from collections.abc import Callable
from importlib import resources

import redis
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript, Script
from redis.exceptions import NoScriptError

from llm_infra_django.memory import LocalStore
from llm_infra_django.ratelimit.algorithms import (
    EXPIRY_MARGIN_MS,
    SLIDING_WINDOW,
    TOKEN_BUCKET,
    LimiterState,
    SlidingWindowLog,
    TokenBucket,
    Verdict,
    ttl_ms,
)


def _source(name: str) -> bytes:
    return resources.files("llm_infra_django.ratelimit").joinpath(name).read_bytes()


# Scripts as bytes need no client to compute their SHA; a NOSCRIPT reply (restart, failover) loads them again.
_SOURCES = {TOKEN_BUCKET: _source("token_bucket.lua"), SLIDING_WINDOW: _source("sliding_window.lua")}
_SCRIPTS = {name: Script(None, source) for name, source in _SOURCES.items()}  # type: ignore[arg-type]
_ASYNC_SCRIPTS = {name: AsyncScript(None, source) for name, source in _SOURCES.items()}  # type: ignore[arg-type]


def redis_keys(algorithm: str, key: str) -> list[str]:
    """The Redis keys of a limited key; the `{…}` hash tag keeps them in one Redis Cluster slot."""
    if algorithm == TOKEN_BUCKET:
        return [f"rl:{{{key}}}:tb"]
    return [f"rl:{{{key}}}:sw", f"rl:{{{key}}}:sw:m"]


def _args(limit: int, period_us: int, cost: int, now_us: int | None) -> list[int | str]:
    return [limit, period_us, cost, "" if now_us is None else now_us, EXPIRY_MARGIN_MS]


def _verdict(raw: bytes | str) -> Verdict:
    allowed, remaining, reset_after_us, retry_after_us, now_us = map(int, raw.split())
    return Verdict(allowed == 1, remaining, reset_after_us, retry_after_us, now_us)


def redis_hit(
    client: redis.Redis,
    algorithm: str,
    key: str,
    *,
    limit: int,
    period_us: int,
    cost: int,
    now_us: int | None = None,
) -> Verdict:
    """One decision in one round trip; `now_us=None` uses the Redis server's clock."""
    script, keys, args = _SCRIPTS[algorithm], redis_keys(algorithm, key), _args(limit, period_us, cost, now_us)
    try:
        # EVALSHA straight away: the `Script` wrapper costs a tenth of a round trip, it only serves the reload.
        raw = client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        raw = script(keys, args, client=client)
    return _verdict(raw)


async def aredis_hit(
    client: aioredis.Redis,
    algorithm: str,
    key: str,
    *,
    limit: int,
    period_us: int,
    cost: int,
    now_us: int | None = None,
) -> Verdict:
    """`redis_hit` on an asyncio client."""
    script, keys, args = _ASYNC_SCRIPTS[algorithm], redis_keys(algorithm, key), _args(limit, period_us, cost, now_us)
    try:
        raw = await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        raw = await script(keys, args, client=client)
    return _verdict(raw)


def wall_clock_us() -> int:
    return time.time_ns() // 1000


class LocalBackend(LocalStore[LimiterState]):
    """Per-process state for when no Redis is configured: limits then hold per process, not per deployment.

    State expires like the Redis keys do (when it equals a fresh one, plus a margin) and is swept every
    `sweep_every` hits, so idle keys do not accumulate.
    """

    def __init__(self, clock: Callable[[], int] = wall_clock_us, sweep_every: int = 1024) -> None:
        super().__init__()
        self.clock = clock
        self.sweep_every = sweep_every
        self._hits = 0

    def hit(
        self, algorithm: str, key: str, *, limit: int, period_us: int, cost: int, now_us: int | None = None
    ) -> Verdict:
        with self.lock:
            now = self.clock() if now_us is None else now_us
            self._hits += 1
            if self._hits % self.sweep_every == 0:
                self.sweep(now)
            name = redis_keys(algorithm, key)[0]
            state = self.value(name, now)
            if state is None:
                state = TokenBucket() if algorithm == TOKEN_BUCKET else SlidingWindowLog()
            verdict = state.hit(limit, period_us, cost, now)
            if verdict.allowed:
                self.put(name, state, verdict.now_us + ttl_ms(verdict.reset_after_us) * 1000)
            return verdict
