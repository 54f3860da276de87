"""Fixtures for the rate limiting tests: a unique scope per test, Redis settings, cleanup of the test's keys."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from typing import Any

import pytest

BASE_INFRA: dict[str, Any] = {"TRACING": {"ENABLED": False}}


def infra(**extra: Any) -> dict[str, Any]:
    """An `LLM_INFRA` for the infra test settings (keeps their TRACING key)."""
    return {**BASE_INFRA, **extra}


@pytest.fixture
def scope(unique_prefix: str) -> str:
    """A scope (and so a Redis key prefix) no other test uses, free of glob characters."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", unique_prefix)


@pytest.fixture
def redis_scope(scope: str, redis_client: Any) -> Iterator[str]:
    """`scope`, with every limiter key under it deleted after the test."""
    yield scope
    keys = list(redis_client.scan_iter(match=f"rl:{{{scope}*", count=1000))
    if keys:
        redis_client.delete(*keys)


DEAD_REDIS_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def use_redis(settings: Any, redis_url: str, redis_scope: str) -> str:
    """Point the limiter at the real Redis; returns the test's scope (its keys are deleted afterwards)."""
    settings.LLM_INFRA = infra(REDIS_URL=redis_url)
    return redis_scope


@pytest.fixture
def client_ip(scope: str) -> str:
    """A client address only this test uses, so keys of fixed scopes ("anon", "user", …) never collide."""
    digest = hashlib.sha256(scope.encode()).digest()
    return f"10.{digest[0]}.{digest[1]}.{digest[2]}"


@pytest.fixture
def ip_keys_cleanup(redis_client: Any, client_ip: str) -> Iterator[str]:
    """`client_ip`, with the Redis keys naming it deleted afterwards."""
    yield client_ip
    keys = list(redis_client.scan_iter(match=f"rl:{{*:ip:{client_ip}}}*", count=1000))
    if keys:
        redis_client.delete(*keys)
