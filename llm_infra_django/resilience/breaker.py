"""Named circuit breakers whose state every process shares through Redis (per-process memory without Redis)."""

from __future__ import annotations

import dataclasses
import enum
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, TypeVar

import structlog
from redis.exceptions import RedisError

from llm_infra_django.conf import infra_settings
from llm_infra_django.errors import CircuitOpenError
from llm_infra_django.memory import LocalState
from llm_infra_django.metrics import CIRCUIT_STATE, CIRCUIT_TRANSITIONS
from llm_infra_django.redis import cached_script, get_async_redis, get_redis
from llm_infra_django.resilience.classify import is_breaker_failure
from llm_infra_django.tracing import span

__all__ = ["BreakerConfig", "CircuitBreaker", "State", "breaker"]

T = TypeVar("T")

logger = structlog.get_logger("llm_infra.breaker")

REDIS_ERROR_LOG_INTERVAL_S = 10.0
# Seconds a caller refused because every half-open probe slot is taken is told to wait.
PROBES_BUSY_RETRY_AFTER_S = 1.0
# Idle breaker keys expire after this long (or twice the reset timeout, if longer).
KEY_TTL_S = 86_400
_REDIS_ERRORS = (RedisError, OSError)


class State(enum.StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


_GAUGE_VALUE = {State.CLOSED: 0, State.HALF_OPEN: 1, State.OPEN: 2}


@dataclasses.dataclass(frozen=True)
class BreakerConfig:
    """Thresholds of a breaker; `reset_timeout` in seconds."""

    failure_threshold: int = 5
    reset_timeout: float = 30.0
    success_threshold: int = 3
    half_open_max_calls: int = 3

    @classmethod
    def from_settings(cls, **overrides: Any) -> BreakerConfig:
        """`LLM_INFRA["CIRCUIT_BREAKER"]` as it is now, with `overrides` (field names) on top."""
        options = infra_settings.CIRCUIT_BREAKER
        values: dict[str, Any] = {
            "failure_threshold": int(options["FAILURE_THRESHOLD"]),
            "reset_timeout": float(options["RESET_TIMEOUT_S"]),
            "success_threshold": int(options["SUCCESS_THRESHOLD"]),
            "half_open_max_calls": int(options["HALF_OPEN_MAX_CALLS"]),
        }
        values.update(overrides)
        return cls(**values)

    @property
    def key_ttl(self) -> int:
        return int(max(KEY_TTL_S, 2 * self.reset_timeout))


@dataclasses.dataclass(frozen=True)
class _Admission:
    """The answer to "may this call go ahead?", from Redis or from memory."""

    allowed: bool
    state: State
    generation: int
    retry_after: float
    previous: State | None  # set when this decision changed the state (open → half-open)


@dataclasses.dataclass(frozen=True)
class _Permit:
    """What an admitted call must hand back when it finishes."""

    local: bool
    generation: int
    token: str | None


@dataclasses.dataclass(frozen=True)
class _Recorded:
    state: State
    previous: State | None  # set when this result changed the state


class _Outcome(enum.StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    RELEASE = "release"  # cancelled: frees a probe slot, counts as neither


# KEYS: state hash, probes zset. ARGV: reset_timeout, half_open_max_calls, probe token, key ttl, busy retry-after.
# Returns {allowed, state, generation, retry_after (string: Lua numbers become integers), previous state or ""}.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'state', 'opened_at', 'gen')
local state = h[1] or 'closed'
local gen = tonumber(h[3]) or 0
local previous = ''
if state == 'closed' then
  return {1, state, gen, '0', previous}
end
if state == 'open' then
  local remaining = (tonumber(h[2]) or 0) + tonumber(ARGV[1]) - now
  if remaining > 0 then
    return {0, state, gen, tostring(remaining), previous}
  end
  previous = 'open'
  state = 'half_open'
  gen = gen + 1
  redis.call('HSET', KEYS[1], 'state', state, 'gen', gen, 'successes', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[4])
  redis.call('DEL', KEYS[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  return {0, state, gen, ARGV[5], previous}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, state, gen, '0', previous}
"""

# KEYS: state hash, probes zset. ARGV: outcome, generation, probe token or "", failure_threshold,
# success_threshold, key ttl. Returns {state, previous state or ""}.
_RECORD_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', KEYS[1], 'state', 'gen', 'failures', 'successes')
local state = h[1] or 'closed'
local gen = tonumber(h[2]) or 0
if ARGV[3] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[3])
end
if ARGV[1] == 'release' or tonumber(ARGV[2]) ~= gen then
  return {state, ''}
end
local function open()
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'gen', gen + 1, 'failures', 0,
    'successes', 0)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('DEL', KEYS[2])
end
if state == 'closed' then
  local failures = tonumber(h[3]) or 0
  if ARGV[1] == 'failure' then
    failures = failures + 1
    if failures >= tonumber(ARGV[4]) then
      open()
      return {'open', 'closed'}
    end
    redis.call('HSET', KEYS[1], 'failures', failures)
    redis.call('EXPIRE', KEYS[1], ARGV[6])
  elseif failures > 0 then
    redis.call('HSET', KEYS[1], 'failures', 0)
  end
  return {state, ''}
end
if state == 'half_open' then
  if ARGV[1] == 'failure' then
    open()
    return {'open', 'half_open'}
  end
  local successes = (tonumber(h[4]) or 0) + 1
  if successes >= tonumber(ARGV[5]) then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'gen', gen + 1, 'failures', 0, 'successes', 0)
    redis.call('EXPIRE', KEYS[1], ARGV[6])
    redis.call('DEL', KEYS[2])
    return {'closed', 'half_open'}
  end
  redis.call('HSET', KEYS[1], 'successes', successes)
  return {state, ''}
end
return {state, ''}
"""


class _MemoryState(LocalState):
    """One process's state of one breaker: the fallback without Redis, the same rules as the Lua scripts."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self._clock = clock
        self.state = State.CLOSED
        self.generation = 0
        self.failures = 0
        self.successes = 0
        self.opened_at = 0.0
        self.probes: dict[str, float] = {}  # token → lease expiry

    def acquire(self, config: BreakerConfig, token: str) -> _Admission:
        with self.lock:
            now = self._clock()
            previous: State | None = None
            if self.state is State.CLOSED:
                return _Admission(True, self.state, self.generation, 0.0, None)
            if self.state is State.OPEN:
                remaining = self.opened_at + config.reset_timeout - now
                if remaining > 0:
                    return _Admission(False, self.state, self.generation, remaining, None)
                previous = State.OPEN
                self.state, self.generation, self.successes = State.HALF_OPEN, self.generation + 1, 0
                self.probes.clear()
            self.probes = {probe: expiry for probe, expiry in self.probes.items() if expiry > now}
            if len(self.probes) >= config.half_open_max_calls:
                return _Admission(False, self.state, self.generation, PROBES_BUSY_RETRY_AFTER_S, previous)
            self.probes[token] = now + config.reset_timeout
            return _Admission(True, self.state, self.generation, 0.0, previous)

    def record(self, config: BreakerConfig, outcome: _Outcome, generation: int | None, token: str | None) -> _Recorded:
        """Apply a result; `generation` None means "the current one" (a result whose admission was in Redis)."""
        with self.lock:
            if token is not None:
                self.probes.pop(token, None)
            stale = generation is not None and generation != self.generation
            if outcome is _Outcome.RELEASE or stale:
                return _Recorded(self.state, None)
            if self.state is State.CLOSED:
                if outcome is _Outcome.FAILURE:
                    self.failures += 1
                    if self.failures >= config.failure_threshold:
                        self._open()
                        return _Recorded(State.OPEN, State.CLOSED)
                else:
                    self.failures = 0
                return _Recorded(self.state, None)
            if self.state is State.HALF_OPEN:
                if outcome is _Outcome.FAILURE:
                    self._open()
                    return _Recorded(State.OPEN, State.HALF_OPEN)
                self.successes += 1
                if self.successes >= config.success_threshold:
                    self._close()
                    return _Recorded(State.CLOSED, State.HALF_OPEN)
            return _Recorded(self.state, None)

    def reset(self) -> State:
        with self.lock:
            previous = self.state
            self._close()
            return previous

    def _clear(self) -> None:
        self._close()

    def _open(self) -> None:
        self.state, self.generation, self.opened_at = State.OPEN, self.generation + 1, self._clock()
        self.failures = self.successes = 0
        self.probes.clear()

    def _close(self) -> None:
        self.state, self.generation = State.CLOSED, self.generation + 1
        self.failures = self.successes = 0
        self.probes.clear()


class CircuitBreaker:
    """A named breaker. Get shared instances with `breaker(name)`; thresholds are read from settings at each call.

    States: closed → open after `FAILURE_THRESHOLD` consecutive failures → half-open once `RESET_TIMEOUT_S` has
    passed, admitting at most `HALF_OPEN_MAX_CALLS` concurrent probes → closed after `SUCCESS_THRESHOLD` probe
    successes; any half-open failure reopens. An open circuit raises `CircuitOpenError` (503 + `Retry-After`).

    With Redis, each decision is one atomic Lua script timed by Redis `TIME` on `cb:{<name>}` (a hash) and
    `cb:{<name>}:probes` (a sorted set of probe leases that expire after a reset timeout, so a killed worker cannot
    hold a slot), both hash-tagged for Redis Cluster. Each admitted call carries the state generation it was
    admitted in, so a late result of an older generation changes nothing. When a Redis call fails, that decision
    is taken on this process's in-memory state instead and a warning is logged (at most every
    `REDIS_ERROR_LOG_INTERVAL_S`): the breaker keeps working, per process, until Redis answers again.

    `is_failure(exc)` decides which exceptions count against the upstream (default: connection errors, timeouts,
    5xx); any other exception means the upstream answered and counts as a success. `clock` times the in-memory
    state only (Redis keeps its own time). `overrides` are `BreakerConfig` fields that win over the settings.
    """

    def __init__(
        self,
        name: str,
        *,
        is_failure: Callable[[BaseException], bool] = is_breaker_failure,
        clock: Callable[[], float] = time.monotonic,
        **overrides: Any,
    ) -> None:
        if not name or "{" in name or "}" in name:
            raise ValueError(f"Invalid circuit breaker name {name!r}: it must be non-empty, without braces.")
        BreakerConfig(**overrides)  # unknown fields fail here, not at the first call
        self.name = name
        self.is_failure = is_failure
        self.clock = clock
        self.overrides = dict(overrides)
        self._local = _MemoryState(clock)
        self._keys = [f"cb:{{{name}}}", f"cb:{{{name}}}:probes"]
        self._last_redis_error_log = float("-inf")

    def config(self) -> BreakerConfig:
        """The thresholds in force now."""
        return BreakerConfig.from_settings(**self.overrides)

    def call(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run `fn(*args, **kwargs)` through the breaker; raises `CircuitOpenError` without calling it when open."""
        with self.guard():
            return fn(*args, **kwargs)

    async def acall(self, fn: Callable[..., Awaitable[T]], /, *args: Any, **kwargs: Any) -> T:
        """Await `fn(*args, **kwargs)` through the breaker (asyncio Redis client)."""
        async with self.guard():
            return await fn(*args, **kwargs)

    def guard(self) -> _Guard:
        """A context manager (`with` or `async with`) admitting one call and recording how its block ended."""
        return _Guard(self)

    def state(self) -> State:
        """The stored state (an open circuit past its timeout reads "open" until a call probes it)."""
        client = get_redis()
        if client is not None:
            try:
                stored = client.hget(self._keys[0], "state")
            except _REDIS_ERRORS as exc:
                self._redis_failed("state", exc)
            else:
                return State(_text(stored) if stored else State.CLOSED)
        return self._local.state

    def reset(self) -> None:
        """Force the circuit closed (an operator's decision), in Redis and in this process."""
        previous = self._local.reset()
        client = get_redis()
        if client is not None:
            try:
                stored = client.hget(self._keys[0], "state")
                client.delete(*self._keys)
            except _REDIS_ERRORS as exc:
                self._redis_failed("reset", exc)
            else:
                previous = State(_text(stored) if stored else State.CLOSED)
        if previous is not State.CLOSED:
            self._changed(previous, State.CLOSED, backend="reset")
        CIRCUIT_STATE.labels(self.name).set(_GAUGE_VALUE[State.CLOSED])

    # --- admission and results: Redis first, this process's memory when there is none or it fails ------------

    def _acquire(self) -> _Permit:
        config, token = self.config(), uuid.uuid4().hex
        admission = None
        client = get_redis()
        if client is not None:
            try:
                raw = cached_script(client, _ACQUIRE_LUA)(keys=self._keys, args=self._acquire_args(config, token))
                admission = self._parse_admission(raw)
            except _REDIS_ERRORS as exc:
                self._redis_failed("acquire", exc)
        return self._admit(admission, config, token)

    def _finish(self, permit: _Permit, exc: BaseException | None) -> None:
        config, outcome = self.config(), self._outcome(exc)
        recorded = None
        client = None if permit.local else get_redis()
        if client is not None:
            try:
                raw = cached_script(client, _RECORD_LUA)(
                    keys=self._keys, args=self._record_args(config, outcome, permit)
                )
                recorded = self._parse_recorded(raw)
            except _REDIS_ERRORS as redis_exc:
                self._redis_failed("record", redis_exc)
        self._settle(recorded, config, outcome, permit)

    async def _aacquire(self) -> _Permit:
        config, token = self.config(), uuid.uuid4().hex
        admission = None
        client = get_async_redis()
        if client is not None:
            try:
                script = cached_script(client, _ACQUIRE_LUA)
                admission = self._parse_admission(await script(keys=self._keys, args=self._acquire_args(config, token)))
            except _REDIS_ERRORS as exc:
                self._redis_failed("acquire", exc)
        return self._admit(admission, config, token)

    async def _afinish(self, permit: _Permit, exc: BaseException | None) -> None:
        config, outcome = self.config(), self._outcome(exc)
        recorded = None
        client = None if permit.local else get_async_redis()
        if client is not None:
            try:
                script = cached_script(client, _RECORD_LUA)
                recorded = self._parse_recorded(
                    await script(keys=self._keys, args=self._record_args(config, outcome, permit))
                )
            except _REDIS_ERRORS as redis_exc:
                self._redis_failed("record", redis_exc)
        self._settle(recorded, config, outcome, permit)

    def _admit(self, admission: _Admission | None, config: BreakerConfig, token: str) -> _Permit:
        """Decide locally when Redis gave no answer, publish what was seen, then admit or refuse."""
        local = admission is None
        if admission is None:
            admission = self._local.acquire(config, token)
        self._observe(admission.state, admission.previous, "memory" if local else "redis")
        if not admission.allowed:
            raise CircuitOpenError(self.name, retry_after=admission.retry_after)
        probe = token if admission.state is State.HALF_OPEN else None
        return _Permit(local=local, generation=admission.generation, token=probe)

    def _settle(self, recorded: _Recorded | None, config: BreakerConfig, outcome: _Outcome, permit: _Permit) -> None:
        """Record locally when Redis gave no answer (a Redis-admitted result then counts in the current generation)."""
        backend = "redis"
        if recorded is None:
            backend = "memory"
            if permit.local:
                recorded = self._local.record(config, outcome, permit.generation, permit.token)
            else:
                recorded = self._local.record(config, outcome, None, None)
        self._observe(recorded.state, recorded.previous, backend)

    # --- shared helpers -------------------------------------------------------------------------------------

    def _outcome(self, exc: BaseException | None) -> _Outcome:
        if exc is None:
            return _Outcome.SUCCESS
        if not isinstance(exc, Exception):  # cancelled, interrupted: the upstream said nothing either way
            return _Outcome.RELEASE
        return _Outcome.FAILURE if self.is_failure(exc) else _Outcome.SUCCESS

    @staticmethod
    def _acquire_args(config: BreakerConfig, token: str) -> list[Any]:
        return [config.reset_timeout, config.half_open_max_calls, token, config.key_ttl, PROBES_BUSY_RETRY_AFTER_S]

    @staticmethod
    def _record_args(config: BreakerConfig, outcome: _Outcome, permit: _Permit) -> list[Any]:
        return [
            outcome.value,
            permit.generation,
            permit.token or "",
            config.failure_threshold,
            config.success_threshold,
            config.key_ttl,
        ]

    @staticmethod
    def _parse_admission(raw: Any) -> _Admission:
        allowed, state, generation, retry_after, previous = raw
        return _Admission(
            allowed=bool(int(allowed)),
            state=State(_text(state)),
            generation=int(generation),
            retry_after=float(_text(retry_after)),
            previous=State(_text(previous)) if _text(previous) else None,
        )

    @staticmethod
    def _parse_recorded(raw: Any) -> _Recorded:
        state, previous = raw
        return _Recorded(State(_text(state)), State(_text(previous)) if _text(previous) else None)

    def _observe(self, state: State, previous: State | None, backend: str) -> None:
        CIRCUIT_STATE.labels(self.name).set(_GAUGE_VALUE[state])
        if previous is not None and previous is not state:
            self._changed(previous, state, backend=backend)

    def _changed(self, previous: State, state: State, *, backend: str) -> None:
        CIRCUIT_TRANSITIONS.labels(self.name, state.value).inc()
        attributes = {"circuit.name": self.name, "circuit.previous_state": previous.value, "circuit.state": state.value}
        with span("circuit_breaker.state_change", attributes=attributes) as current:
            current.add_event("circuit_state_changed", attributes)
        log = logger.warning if state is State.OPEN else logger.info
        log("circuit_state_changed", circuit=self.name, previous=previous.value, state=state.value, backend=backend)

    def _redis_failed(self, operation: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last_redis_error_log >= REDIS_ERROR_LOG_INTERVAL_S:
            self._last_redis_error_log = now
            logger.warning(
                "circuit_breaker_redis_error",
                circuit=self.name,
                operation=operation,
                error=f"{type(exc).__name__}: {exc}",
                fallback="memory",
            )


class _Guard:
    """One admitted call: `__enter__` asks the breaker, `__exit__` tells it how the block ended."""

    def __init__(self, owner: CircuitBreaker) -> None:
        self._owner = owner
        self._permit: _Permit | None = None

    @property
    def probe(self) -> bool:
        """Whether the call was admitted as a half-open probe (its success does not mean the circuit is closed)."""
        return self._permit is not None and self._permit.token is not None

    def __enter__(self) -> _Guard:
        self._permit = self._owner._acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._permit is not None:
            self._owner._finish(self._permit, exc)

    async def __aenter__(self) -> _Guard:
        self._permit = await self._owner._aacquire()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._permit is not None:
            await self._owner._afinish(self._permit, exc)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_registry: dict[str, CircuitBreaker] = {}
_registry_lock = threading.Lock()


def breaker(
    name: str,
    *,
    is_failure: Callable[[BaseException], bool] | None = None,
    clock: Callable[[], float] | None = None,
    **overrides: Any,
) -> CircuitBreaker:
    """The process-wide breaker called `name` (e.g. `"upstream:shield"`), created on first use.

    Options apply when the breaker is created; asking again for the same name with different options raises
    `ValueError` rather than silently returning a breaker that behaves otherwise.
    """
    with _registry_lock:
        existing = _registry.get(name)
        if existing is None:
            existing = CircuitBreaker(
                name, is_failure=is_failure or is_breaker_failure, clock=clock or time.monotonic, **overrides
            )
            _registry[name] = existing
            return existing
    differs = (
        (is_failure is not None and is_failure is not existing.is_failure)
        or (clock is not None and clock is not existing.clock)
        or (overrides and overrides != existing.overrides)
    )
    if differs:
        raise ValueError(f"Circuit breaker {name!r} already exists with other options.")
    return existing
