"""Fixtures of the consumption tests: a provider with an echo service, a consumer tenant with a key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from apps.consumption.keys import key_cache
from apps.consumption.routing import route_cache
from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.tenancy.models import Role, Tier
from tests.apps.tenancy.browser.conftest import browser  # noqa: F401 (headless Chromium: the API docs test)
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

ECHO_DEFINITION: dict[str, Any] = {
    "name": "Echo Chat",
    "description": "A deterministic chat model for tests.",
    "category": "chat",
    "protocol": "echo",
    "upstream_model": "echo-1",
    "pricing_model": "per_token",
    "price_input_per_mtok": "1000",
    "price_output_per_mtok": "2000",
    "data_residency": ["US"],
    "context_length": 8192,
}


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Per-process caches never carry one test's keys or routes into another (counters: tests/conftest.py)."""
    from django.core.cache import cache

    def reset() -> None:
        from apps.consumption import ledger_stream
        from apps.consumption.health import health_cache
        from llm_infra_django.redis import get_redis

        key_cache.forget()
        route_cache.clear()
        health_cache.clear()
        cache.clear()
        client = get_redis()
        if client is not None:  # this database's ledger stream holds nothing of another test
            client.delete(ledger_stream.stream_key(), ledger_stream.stream_key() + ":dead")
            ledger_stream._groups.clear()

    reset()
    yield
    reset()


@pytest.fixture
def provider(transactional_db):
    owner = UserFactory(username="provider-owner")
    tenant = TenantFactory(slug="acme", trusted_publisher=True, tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    tenant.owner = owner
    return tenant


def publish_openai(provider: Any, url: str, *, slug: str = "local", **values: Any) -> None:
    """Publish an OpenAI-protocol service of `provider` whose upstream is `url` (a test server), as `acme/<slug>`."""
    definition = {**ECHO_DEFINITION, "protocol": "openai", "endpoint_url": url, "upstream_model": "m", **values}
    publishing.publish_service(publisher=provider, actor=provider.owner, slug=slug, version="1.0.0", values=definition)


@pytest.fixture
def local_service(provider, upstream):
    """`acme/local`, served by the test upstream; returns the upstream's `Behaviour`."""
    behaviour, url = upstream
    publish_openai(provider, url)
    return behaviour


@pytest.fixture
def echo_service(provider):
    service, version, _ = publishing.publish_service(
        publisher=provider, actor=provider.owner, slug="echo", version="1.0.0", values=dict(ECHO_DEFINITION)
    )
    version.refresh_from_db()
    assert version.status == "active", version.status
    return service


@pytest.fixture
def consumer(transactional_db):
    owner = UserFactory(username="consumer-owner")
    tenant = TenantFactory(slug="globex", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    tenant.owner = owner
    return tenant


@pytest.fixture
def make_key(consumer):
    def make(**limits: Any) -> str:
        _, secret = create_api_key(tenant=consumer, actor=consumer.owner, name="test", **limits)
        return secret

    return make


@pytest.fixture
def api_key(make_key, echo_service) -> str:
    return make_key()


def drain_ledger(seconds: float = 10.0) -> int:
    """Write what the ledger stream holds (with Redis, records reach the database asynchronously), and wait for
    entries another reader (a server's drainer) took but has not yet written."""
    import time

    from redis.exceptions import ResponseError

    from apps.consumption import ledger_stream
    from llm_infra_django.redis import get_redis

    total = 0
    deadline = time.monotonic() + seconds
    while True:
        written = ledger_stream.drain_once()
        total += written
        if written:
            continue
        client = get_redis()
        try:
            pending = int(client.xpending(ledger_stream.stream_key(), ledger_stream.GROUP)["pending"]) if client else 0
        except ResponseError:  # no stream or no group: nothing taken
            pending = 0
        if not pending or time.monotonic() > deadline:
            return total
        time.sleep(0.02)
