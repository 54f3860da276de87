"""The Redis shared by limiter, breakers and other cross-process state (sync and asyncio clients)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import redis
import redis.asyncio as aioredis
from django.core.cache import caches
from django.core.signals import setting_changed
from redis.exceptions import NoScriptError

from llm_infra_django.conf import infra_settings

_lock = threading.Lock()
_sync_clients: dict[str, redis.Redis] = {}
_async_clients: dict[tuple[str, int], aioredis.Redis] = {}

CLIENT_OPTIONS: dict[str, Any] = {"socket_connect_timeout": 1.0, "socket_timeout": 2.0, "health_check_interval": 30}


_NOT_READ = object()
_url: Any = _NOT_READ  # the URL, read once per settings change (hot paths ask for the client on every call)


def redis_url() -> str | None:
    """`LLM_INFRA["REDIS_URL"]`, else the URL of the `CACHE_ALIAS` cache when it is a Redis cache, else None."""
    global _url
    if _url is _NOT_READ:
        _url = _read_url()
    return _url


def _read_url() -> str | None:
    if infra_settings.REDIS_URL:
        return str(infra_settings.REDIS_URL)
    from django.conf import settings

    config = settings.CACHES.get(infra_settings.CACHE_ALIAS, {})
    backend = config.get("BACKEND", "")
    if "redis" not in backend.lower():
        return None
    location = config.get("LOCATION")
    if isinstance(location, (list, tuple)):
        location = location[0] if location else None
    return str(location) if location else None


def get_redis() -> redis.Redis | None:
    """A process-wide client (pooled) on `redis_url()`, or None when no Redis is configured."""
    url = redis_url()
    if url is None:
        return None
    client = _sync_clients.get(url)
    if client is None:
        with _lock:
            client = _sync_clients.get(url)
            if client is None:
                client = redis.Redis.from_url(url, **CLIENT_OPTIONS)
                _sync_clients[url] = client
    return client


def get_async_redis() -> aioredis.Redis | None:
    """An asyncio client for the running event loop (clients are bound to their loop), or None without Redis."""
    url = redis_url()
    if url is None:
        return None
    key = (url, id(asyncio.get_running_loop()))
    client = _async_clients.get(key)
    if client is None:
        client = aioredis.Redis.from_url(url, **CLIENT_OPTIONS)
        _async_clients[key] = client
    return client


_scripts: dict[tuple[int, str], Any] = {}


def cached_script(client: Any, source: str) -> Any:
    """The client's registered Lua script for `source`, made once (EVALSHA, the SHA computed once)."""
    key = (id(client), source)
    script = _scripts.get(key)
    if script is None:
        script = _scripts[key] = client.register_script(source)
    return script


def queue_script(pipe: Any, client: Any, source: str, keys: list[Any], args: list[Any]) -> None:
    """Queue a script on `pipe` by its SHA alone. (redis-py's `Script` on a pipeline first asks SCRIPT EXISTS: one
    round trip more per execution.) Run the pipeline with `raise_on_error=False` and pass the script's result to
    `script_result`, which loads and runs the script on its own should Redis not know it (after a restart)."""
    pipe.evalsha(cached_script(client, source).sha, len(keys), *keys, *args)


async def script_result(result: Any, client: Any, source: str, keys: list[Any], args: list[Any]) -> Any:
    """The result of a script queued with `queue_script`: as it came, or — when Redis did not know the script — the
    result of running it now (it had no effect the first time); any other error is raised."""
    if isinstance(result, NoScriptError):
        return await cached_script(client, source)(keys=keys, args=args)
    if isinstance(result, Exception):
        raise result
    return result


def cache_alias_client() -> Any:
    """The raw client of the `CACHE_ALIAS` cache when it is django-redis based, else None."""
    cache = caches[infra_settings.CACHE_ALIAS]
    get_client = getattr(getattr(cache, "client", None), "get_client", None)
    return get_client(write=True) if callable(get_client) else None


def reset_clients() -> None:
    """Forget cached clients and the URL (after settings change, or in a forked child)."""
    global _url
    _url = _NOT_READ
    with _lock:
        for client in _sync_clients.values():
            client.close()
        _sync_clients.clear()
        _async_clients.clear()


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in ("LLM_INFRA", "CACHES"):
        reset_clients()


setting_changed.connect(_on_setting_changed, dispatch_uid="llm_infra_django.redis.reset")
