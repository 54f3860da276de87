"""`RedisCache`: django-redis style backend with JSON values, fail-open/closed and a stampede-guarded get_or_set."""

from __future__ import annotations

import functools
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache.backends.base import DEFAULT_TIMEOUT, BaseCache
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.exceptions import ConnectionInterrupted
from redis.exceptions import RedisError

from llm_infra_django.cache.client import UndecodableValueError
from llm_infra_django.errors import CacheError
from llm_infra_django.logging import log_cache
from llm_infra_django.metrics import CACHE_OPERATIONS

DEFAULT_OPTIONS: dict[str, Any] = {
    "CLIENT_CLASS": "llm_infra_django.cache.client.InfraClient",
    "SERIALIZER": "llm_infra_django.cache.serializers.JSONSerializer",
    "FAIL_OPEN": True,
    "STAMPEDE_LOCK_TIMEOUT": 10.0,
    "STAMPEDE_WAIT_TIMEOUT": 15.0,
    "STAMPEDE_POLL_INTERVAL": 0.05,
}

# What counts as "the cache failed" (as opposed to a caller's bug such as an unserialisable value).
CACHE_FAILURES = (ConnectionInterrupted, RedisError, OSError, UndecodableValueError)

_MISSING = object()
P = ParamSpec("P")
R = TypeVar("R")


def cache_operation(
    operation: str, *, returns: Any = None
) -> Callable[[Callable[Concatenate[RedisCache, P], R]], Callable[Concatenate[RedisCache, P], R]]:
    """Route a cache failure in the decorated method through `RedisCache.failed` (the one error policy)."""

    def decorate(method: Callable[Concatenate[RedisCache, P], R]) -> Callable[Concatenate[RedisCache, P], R]:
        @functools.wraps(method)
        def guarded(self: RedisCache, *args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return method(self, *args, **kwargs)
            except CACHE_FAILURES as exc:
                key = args[0] if args else kwargs.get("key", kwargs.get("pattern", ""))
                return self.failed(operation, key, exc, returns)

        return guarded

    return decorate


class RedisCache(BaseCache):
    """`CACHES` backend on Redis: JSON values, SCAN-only pattern deletes, stampede guard, metrics, fail-open.

    Like django-redis, the backend only applies policy and delegates every command to `OPTIONS["CLIENT_CLASS"]`
    (default `llm_infra_django.cache.client.InfraClient`, a django-redis `DefaultClient`). A Redis failure is
    counted (`result="error"`), logged with `log_cache`, then either treated as a miss/no-op (`FAIL_OPEN`, default)
    or raised as `llm_infra_django.errors.CacheError`.
    """

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        user_options = params.get("OPTIONS") or {}
        if "IGNORE_EXCEPTIONS" in user_options:
            raise ImproperlyConfigured("RedisCache: use OPTIONS['FAIL_OPEN'] instead of IGNORE_EXCEPTIONS.")
        options = {**DEFAULT_OPTIONS, **user_options}
        params = {**params, "OPTIONS": options}
        super().__init__(params)
        self._server = server
        self._params = params
        self._client_cls = import_string(options["CLIENT_CLASS"])
        self._client: Any = None
        self.alias = str(options.get("ALIAS") or _configured_alias(server, params) or "unnamed")
        self.fail_open = bool(options["FAIL_OPEN"])
        self.lock_timeout = float(options["STAMPEDE_LOCK_TIMEOUT"])
        self.wait_timeout = float(options["STAMPEDE_WAIT_TIMEOUT"])
        self.poll_interval = float(options["STAMPEDE_POLL_INTERVAL"])

    @property
    def client(self) -> Any:
        """The client instance, built on first use (no connection is made before the first command)."""
        if self._client is None:
            self._client = self._client_cls(self._server, self._params, self)
        return self._client

    def failed(self, operation: str, key: Any, exc: BaseException, returns: Any) -> Any:
        """Count and log a cache failure; return `returns` when failing open, else raise `CacheError`."""
        cause = exc.__cause__ if isinstance(exc, ConnectionInterrupted) and exc.__cause__ else exc
        error = f"{type(cause).__name__}: {cause}"
        CACHE_OPERATIONS.labels(self.alias, "error").inc()
        log_cache(operation=operation, key=str(key)[:200], error=error)
        if self.fail_open:
            return returns
        # The envelope shows `details` to API clients: the Redis error text stays in the logs.
        raise CacheError(f"Cache {operation} failed.", details={"alias": self.alias, "operation": operation}) from cause

    def _record(self, result: str, count: int = 1) -> None:
        if count:
            CACHE_OPERATIONS.labels(self.alias, result).inc(count)

    # --- Django's cache API ---------------------------------------------------------------------------------

    def get(self, key: str, default: Any = None, version: int | None = None) -> Any:
        value = self._get(key, version=version)
        self._record("miss" if value is _MISSING else "hit")
        return default if value is _MISSING else value

    @cache_operation("get", returns=_MISSING)
    def _get(self, key: str, version: int | None = None) -> Any:
        return self.client.get(key, default=_MISSING, version=version)

    # set, delete_many and incr/decr(_version) answer as django-redis's do (whether stored, how many deleted; None when
    # Redis failed and the cache fails open), not as BaseCache's annotations say.
    @cache_operation("set", returns=False)
    def set(  # type: ignore[override]
        self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> bool:
        return bool(self.client.set(key, value, timeout, version=version))

    @cache_operation("add", returns=False)
    def add(self, key: str, value: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return bool(self.client.add(key, value, timeout, version=version))

    @cache_operation("touch", returns=False)
    def touch(self, key: str, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None) -> bool:
        return bool(self.client.touch(key, timeout, version=version))

    @cache_operation("delete", returns=False)
    def delete(self, key: str, version: int | None = None) -> bool:
        return bool(self.client.delete(key, version=version))

    def get_many(self, keys: Iterable[str], version: int | None = None) -> dict[str, Any]:
        keys = list(keys)
        found = self._get_many(keys, version=version) or {}
        self._record("hit", len(found))
        self._record("miss", len(keys) - len(found))
        return found

    @cache_operation("get_many")
    def _get_many(self, keys: list[str], version: int | None = None) -> dict[str, Any] | None:
        return self.client.get_many(keys, version=version)

    def set_many(
        self, data: dict[str, Any], timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> list[str]:
        """Store every pair; returns the keys that could not be stored (all of them when Redis failed)."""
        try:
            self.client.set_many(data, timeout, version=version)
        except CACHE_FAILURES as exc:
            self.failed("set_many", list(data), exc, None)
            return list(data)
        return []

    @cache_operation("delete_many", returns=0)
    def delete_many(self, keys: Iterable[str], version: int | None = None) -> int:  # type: ignore[override]
        return int(self.client.delete_many(keys, version=version))

    @cache_operation("has_key", returns=False)
    def has_key(self, key: str, version: int | None = None) -> bool:
        return bool(self.client.has_key(key, version=version))

    @cache_operation("incr")
    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int | None:  # type: ignore[override]
        """The new value; ValueError when the key is missing, None when Redis failed and the cache fails open."""
        return int(self.client.incr(key, delta=delta, version=version))

    @cache_operation("decr")
    def decr(self, key: str, delta: int = 1, version: int | None = None) -> int | None:  # type: ignore[override]
        return int(self.client.decr(key, delta=delta, version=version))

    @cache_operation("incr_version")
    def incr_version(self, key: str, delta: int = 1, version: int | None = None) -> int | None:  # type: ignore[override]
        return int(self.client.incr_version(key, delta=delta, version=version))

    @cache_operation("clear")
    def clear(self) -> None:
        """Delete this cache's keys (all versions under its KEY_PREFIX) with SCAN; never FLUSHDB."""
        self.client.clear()

    @cache_operation("close")
    def close(self, **kwargs: Any) -> None:
        if self._client is not None:
            self._client.close()

    def get_or_set(
        self, key: str, default: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """Cache-aside read: the cached value, else `default` (called if callable) stored and returned.

        Concurrent misses on one key, in any thread or process, compute it once: the first caller takes a Redis
        lock (`SET NX PX` with a random token, expiring after `STAMPEDE_LOCK_TIMEOUT`) and computes; the others
        poll for the value every `STAMPEDE_POLL_INTERVAL`. If the holder dies its lock expires and one waiter takes
        over; a waiter that has waited `STAMPEDE_WAIT_TIMEOUT`, or finds Redis unavailable (fail-open), computes
        without the lock.
        """
        value = self.get(key, _MISSING, version=version)
        if value is not _MISSING:
            return value
        compute: Callable[[], Any] = default if callable(default) else lambda: default
        token = secrets.token_hex(16)
        deadline = time.monotonic() + self.wait_timeout
        while True:
            locked = self._acquire_lock(key, token, version=version)
            if locked is None:  # Redis unavailable and failing open: nothing to coordinate with
                break
            if locked:
                try:
                    value = self._get(key, version=version)
                    if value is _MISSING:
                        value = compute()
                        self.set(key, value, timeout=timeout, version=version)
                    return value
                finally:
                    self._release_lock(key, token, version=version)
            if time.monotonic() >= deadline:
                log_cache(operation="get_or_set", key=str(key), error="stampede lock wait timed out; computing")
                break
            time.sleep(self.poll_interval)
            value = self._get(key, version=version)
            if value is not _MISSING:
                return value
        value = compute()
        self.set(key, value, timeout=timeout, version=version)
        return value

    async def aget_or_set(
        self, key: str, default: Any, timeout: float | None = DEFAULT_TIMEOUT, version: int | None = None
    ) -> Any:
        """`get_or_set` with the same stampede guard, run in a worker thread."""
        return await sync_to_async(self.get_or_set)(key, default, timeout=timeout, version=version)

    @cache_operation("lock", returns=None)
    def _acquire_lock(self, key: str, token: str, version: int | None = None) -> bool | None:
        return bool(self.client.acquire_lock(key, token, max(1, int(self.lock_timeout * 1000)), version=version))

    @cache_operation("unlock", returns=False)
    def _release_lock(self, key: str, token: str, version: int | None = None) -> bool:
        return bool(self.client.release_lock(key, token, version=version))

    # --- Redis extras (django-redis names) --------------------------------------------------------------------

    @cache_operation("delete_pattern", returns=0)
    def delete_pattern(self, pattern: str, version: int | None = None, itersize: int | None = None) -> int:
        """Delete every key matching a glob (e.g. `"catalog:*"`) using SCAN in batches; returns how many."""
        return int(self.client.delete_pattern(pattern, version=version, itersize=itersize))

    def iter_keys(self, pattern: str, version: int | None = None, itersize: int | None = None) -> Iterator[str]:
        """The keys matching a glob, found with SCAN; a failure mid-way ends the iteration when failing open."""
        try:
            yield from self.client.iter_keys(pattern, itersize=itersize, version=version)
        except CACHE_FAILURES as exc:
            self.failed("iter_keys", pattern, exc, None)

    def keys(self, pattern: str, version: int | None = None) -> list[str]:
        """`list(iter_keys(pattern))`: SCAN, never KEYS."""
        return list(self.iter_keys(pattern, version=version))

    @cache_operation("ttl", returns=0)
    def ttl(self, key: str, version: int | None = None) -> int | None:
        """Seconds to live: None for a key without expiry, 0 for a missing key."""
        return self.client.ttl(key, version=version)

    @cache_operation("expire", returns=False)
    def expire(self, key: str, timeout: float, version: int | None = None) -> bool:
        return bool(self.client.expire(key, timeout, version=version))

    @cache_operation("persist", returns=False)
    def persist(self, key: str, version: int | None = None) -> bool:
        return bool(self.client.persist(key, version=version))


def _configured_alias(server: str, params: dict[str, Any]) -> str | None:
    """The `CACHES` alias whose configuration built this backend (Django does not pass the alias to backends)."""
    for alias, config in getattr(settings, "CACHES", {}).items():
        rest = {name: value for name, value in config.items() if name not in ("BACKEND", "LOCATION")}
        options = {**DEFAULT_OPTIONS, **(rest.get("OPTIONS") or {})}
        if config.get("LOCATION") == server and {**rest, "OPTIONS": options} == params:
            return str(alias)
    return None
