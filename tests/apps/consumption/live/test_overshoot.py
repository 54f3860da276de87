"""Zero overshoot on real Redis with two server processes and 64 concurrent clients."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import httpx
import pytest
from asgiref.sync import async_to_sync

from apps.consumption import tokenizer
from apps.consumption.models import UsageRecord
from apps.tenancy import services as tenancy
from tests.apps.consumption.conftest import publish_openai
from tests.apps.tenancy.factories import UserFactory

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

LONG_TEXT = " ".join(f"word{i}" for i in range(40))
MESSAGES = [{"role": "user", "content": LONG_TEXT}]
CLIENTS = 64


async def _fire(urls: list[str], secret: str, total: int, body: dict) -> list[int]:
    """`total` requests from CLIENTS concurrent clients, alternating between the servers."""
    limits = httpx.Limits(max_connections=CLIENTS)
    statuses: list[int] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(total):
        queue.put_nowait(index)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def worker() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                response = await client.post(
                    f"{urls[index % len(urls)]}/v1/chat/completions",
                    json=body,
                    headers={"Authorization": f"Bearer {secret}"},
                )
                statuses.append(response.status_code)

        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
    return statuses


def wait_for_records(count: int, seconds: float = 15, *, calls_only: bool = False) -> list[UsageRecord]:
    """The servers write records from the ledger stream asynchronously: wait for them (with `calls_only`, the calls'
    records, not their failed attempts')."""
    records = UsageRecord.objects.filter(attempt_of="") if calls_only else UsageRecord.objects.all()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if records.count() >= count:
            time.sleep(0.3)  # and a moment more: nothing beyond `count` may arrive
            return list(records.all())
        time.sleep(0.1)
    return list(records.all())


def fire(urls: list[str], secret: str, total: int, body: dict) -> list[int]:
    return async_to_sync(_fire)(urls, secret, total, body)


def test_key_rpm_admits_exactly_n(start_servers, make_key, echo_service) -> None:
    urls = start_servers(2)
    secret = make_key(rpm_limit=30)
    statuses = fire(urls, secret, 120, {"model": "acme/echo", "messages": MESSAGES, "max_tokens": 1})
    assert statuses.count(200) == 30
    assert statuses.count(429) == 90


def test_budget_is_never_exceeded_and_admits_floor_of_budget_over_cost(start_servers, make_key, echo_service) -> None:
    # given requests whose estimate equals their actual cost (the echo reply is longer than max_tokens)
    prompt = tokenizer.count_chat_prompt_tokens(MESSAGES)
    cost = Decimal(prompt) * 1000 / 10**6 + Decimal(5) * 2000 / 10**6
    budget = cost * Decimal("10.5")
    urls = start_servers(2)
    secret = make_key(budget_day_usd=str(budget))

    # when 64 clients spend it from two processes
    statuses = fire(urls, secret, 80, {"model": "acme/echo", "messages": MESSAGES, "max_tokens": 5})

    # then exactly floor(B / cost) succeed and the ledger bills no more than B
    assert statuses.count(200) == 10
    assert statuses.count(402) == 70
    billed = sum(record.cost for record in wait_for_records(10))
    assert billed == cost * 10 <= budget


def test_budget_holds_when_the_upstream_counts_more_prompt_tokens(start_servers, make_key, provider, upstream) -> None:
    # given an OpenAI-compatible upstream that counts 7 prompt tokens for a prompt our tokenizer counts as 1
    behaviour, url = upstream
    behaviour.delay = 0.05
    publish_openai(provider, url, slug="counted")
    short = [{"role": "user", "content": "Hi"}]
    assert tokenizer.count_chat_prompt_tokens(short) < 7
    cost = Decimal(7) * 1000 / 10**6 + Decimal(2) * 2000 / 10**6
    budget = cost * Decimal("10.5")
    urls = start_servers(2)
    secret = make_key(budget_day_usd=str(budget))

    # when 64 clients spend it from two processes
    statuses = fire(urls, secret, 80, {"model": "acme/counted", "messages": short, "max_tokens": 2})

    # then the ledger bills the upstream's counts, and never more than the budget (reservations use an upper bound)
    served = statuses.count(200)
    assert served >= 1 and set(statuses) <= {200, 402}
    records = wait_for_records(served)
    assert all(record.prompt_tokens == 7 for record in records)
    assert sum(record.cost for record in records) == cost * served <= budget


def test_tenant_request_quota_admits_exactly_q(start_servers, make_key, echo_service, consumer) -> None:
    staff = UserFactory(username="ops", is_staff=True, is_superuser=True)
    tenancy.set_quota_override(tenant=consumer, quota_type="api_requests", limit=25, action="block", actor=staff)
    urls = start_servers(2)
    secret = make_key()
    statuses = fire(urls, secret, 100, {"model": "acme/echo", "messages": MESSAGES, "max_tokens": 1})
    assert statuses.count(200) == 25
    assert statuses.count(402) == 75
    assert len(wait_for_records(25)) == 25


def test_parallel_limit_holds_at_the_upstream(start_servers, make_key, provider, upstream) -> None:
    behaviour, url = upstream
    behaviour.delay = 0.2
    publish_openai(provider, url, slug="slow")
    urls = start_servers(2)
    secret = make_key(max_parallel=3)
    statuses = fire(urls, secret, 96, {"model": "acme/slow", "messages": MESSAGES, "max_tokens": 1})
    assert behaviour.max_in_flight <= 3
    assert statuses.count(200) >= 3
    assert set(statuses) <= {200, 429}
    assert behaviour.requests == statuses.count(200)
