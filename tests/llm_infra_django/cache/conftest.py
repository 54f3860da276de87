"""Fixtures for the cache backend tests: Redis-backed caches under a per-test key prefix, cleaned up afterwards."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django_redis.client.default import glob_escape
from prometheus_client import REGISTRY

from llm_infra_django.cache import RedisCache
from tests.conftest import free_port


@pytest.fixture
def make_cache(redis_url: str, unique_prefix: str) -> Iterator[Callable[..., RedisCache]]:
    """Build `RedisCache` instances on REDIS_URL (or `location`) under this test's key prefix and metrics alias."""
    built: list[RedisCache] = []

    def make(location: str | None = None, **options: Any) -> RedisCache:
        cache = RedisCache(
            location or redis_url,
            {"KEY_PREFIX": unique_prefix, "OPTIONS": {"ALIAS": unique_prefix, **options}},
        )
        built.append(cache)
        return cache

    yield make
    raw = redis.Redis.from_url(redis_url)
    stale = list(raw.scan_iter(match=glob_escape(unique_prefix) + "*", count=1000))
    if stale:
        raw.unlink(*stale)
    raw.close()


@pytest.fixture
def cache(make_cache: Callable[..., RedisCache]) -> RedisCache:
    return make_cache()


@pytest.fixture
def cache_counts() -> Callable[[str], dict[str, float]]:
    """Current `llm_infra_cache_operations_total` values of an alias, by result."""

    def counts(alias: str) -> dict[str, float]:
        return {
            result: REGISTRY.get_sample_value("llm_infra_cache_operations_total", {"alias": alias, "result": result})
            or 0.0
            for result in ("hit", "miss", "error")
        }

    return counts


class RedisServer:
    """A throwaway `redis-server` on a free port that a test can stop and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private Redis server (started); killed at the end of the test."""
    server = RedisServer()
    try:
        server.start()
    except FileNotFoundError:
        pytest.skip("redis-server is not installed")
    yield server
    server.stop()
