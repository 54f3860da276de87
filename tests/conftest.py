"""Suite-wide fixtures: server markers (skip locally when a server is absent, fail in CI), Redis helpers."""

from __future__ import annotations

import io
import logging
import os
import shutil
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from llm_infra_django.logging import StructlogFormatter
from llm_infra_django.memory import clear_all
from tests.support import openai_upstream
from tests.support.cluster import free_port, postgres_bin

__all__ = ["free_port"]

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REDIS_URL = os.environ.get("REDIS_URL", "")
DATABASE_URL = os.environ.get("DATABASE_URL", "")
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")


def _reachable(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1):
            return True
    except OSError:
        return False


def _requirement(marker: str) -> str | None:
    """Why a test with `marker` cannot run here, or None when it can."""
    if marker == "redis":
        if not REDIS_URL:
            return "REDIS_URL is not set"
        return None if _reachable(REDIS_URL, 6379) else f"Redis at {REDIS_URL} is not answering"
    if marker == "postgres":
        if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
            return "DATABASE_URL is not a PostgreSQL URL"
        return None if _reachable(DATABASE_URL, 5432) else "PostgreSQL is not answering"
    if marker == "faults":
        if shutil.which("redis-server") is None:
            return "redis-server is not installed"
        if postgres_bin() is None:
            return "the PostgreSQL server binaries (initdb, pg_ctl) are not installed"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "running as root, and runuser (to start PostgreSQL as postgres) is missing"
        return None
    if marker == "celery_worker":
        if not CELERY_BROKER_URL:
            return "CELERY_BROKER_URL is not set"
        return None if _reachable(CELERY_BROKER_URL, 6379) else "the Celery broker is not answering"
    return None


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in ("redis", "postgres", "celery_worker", "faults"):
        if item.get_closest_marker(marker) is None:
            continue
        reason = _requirement(marker)
        if reason is None:
            continue
        if IN_CI:
            pytest.fail(f"CI=true but this {marker} test cannot run: {reason}", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def _fresh_local_state() -> Iterator[None]:
    """Each test starts and ends as in a fresh process: every per-process stand-in for Redis is cleared."""
    clear_all()
    yield
    clear_all()


@pytest.fixture
def redis_url() -> str:
    reason = _requirement("redis")
    if reason:
        if IN_CI:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[object]:
    """A raw client on REDIS_URL; keys written under the test's own prefix are deleted afterwards."""
    import redis

    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """A key prefix no other test (or xdist worker) uses."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"t:{worker}:{request.node.name}:{os.urandom(4).hex()}"


@pytest.fixture(autouse=True)
def _tier_defaults(request: pytest.FixtureRequest) -> None:
    """Transactional tests flush every table, data migrations' rows included: put the tier table back."""
    if not {"db", "transactional_db"} & set(request.fixturenames) and not request.node.get_closest_marker("django_db"):
        return
    from django.apps import apps

    if not apps.is_installed("apps.tenancy"):
        return
    request.getfixturevalue("_django_db_helper")  # the database as the test asked for it (pytest-django)
    import importlib

    from apps.tenancy.models import TierQuota

    if not TierQuota.objects.exists():
        migration = importlib.import_module("apps.tenancy.migrations.0002_tier_defaults")
        migration.load(apps, None)


@pytest.fixture(scope="session", autouse=True)
def _close_ledger_connection() -> Iterator[None]:
    """The ledger's writer thread keeps a database connection: close it before the test database is dropped."""
    yield
    from django.apps import apps

    if apps.is_installed("apps.consumption"):
        from django.db import connections

        from apps.consumption.ledger import _executor

        _executor.submit(connections.close_all).result(timeout=10)


@pytest.fixture
def upstream() -> Iterator[tuple[openai_upstream.Behaviour, str]]:
    """A real local OpenAI-compatible server in a thread: its `Behaviour` (what it does, what it saw) and base URL."""
    server, behaviour, url = openai_upstream.start()
    yield behaviour, url
    server.shutdown()
    server.server_close()


@pytest.fixture
def all_logs() -> Iterator[io.StringIO]:
    """Every log line of every logger, at DEBUG, rendered by the project's formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(StructlogFormatter())
    handler.setLevel(logging.DEBUG)
    names = ["", "django", "django.request", "django.db.backends", "celery", "httpx", "httpcore", "llm_infra"]
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
