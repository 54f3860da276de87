"""Calls to an OpenAI-compatible upstream through its circuit breaker: answers that cannot be read count as
failures like errors do, and a half-open circuit sees every call until it closes."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient, override_settings

from apps.consumption.models import UsageRecord
from apps.publishing.models import ServiceVersion
from llm_infra_django.resilience.breaker import breaker
from tests.apps.consumption.conftest import drain_ledger

pytestmark = pytest.mark.django_db(transaction=True)

BODY = {"model": "acme/local", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
FAST_BREAKER = {
    **settings.LLM_INFRA,
    "CIRCUIT_BREAKER": {
        "FAILURE_THRESHOLD": 2,
        "RESET_TIMEOUT_S": 0.3,
        "SUCCESS_THRESHOLD": 2,
        "HALF_OPEN_MAX_CALLS": 1,
    },
}


async def call(secret: str, **extra: object):
    return await AsyncClient().post(
        "/v1/chat/completions",
        {**BODY, **extra},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


async def circuit_state() -> str:
    version = await ServiceVersion.objects.aget(service__slug="local")
    return str(await sync_to_async(breaker(f"upstream:{version.pk}").state)())


@override_settings(LLM_INFRA=FAST_BREAKER)
async def test_garbage_answers_open_the_circuit(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.garbage = True
    statuses = [(await call(secret)).status_code for _ in range(3)]
    assert statuses == [502, 502, 503]
    assert local_service.requests == 2, "an open circuit does not call the upstream"
    assert await circuit_state() == "open"


@override_settings(LLM_INFRA=FAST_BREAKER)
async def test_a_stream_answered_without_an_event_stream_is_a_502_failure(make_key, local_service) -> None:
    secret = await sync_to_async(make_key)()
    local_service.garbage = True
    responses = [await call(secret, stream=True) for _ in range(3)]
    assert [r.status_code for r in responses] == [502, 502, 503]
    assert responses[0].json()["error"]["code"] == "external_service_error"
    await sync_to_async(drain_ledger)()
    statuses = [r async for r in UsageRecord.objects.order_by("started_at").values_list("status_code", flat=True)]
    assert statuses == [502, 502, 503]


@override_settings(LLM_INFRA=FAST_BREAKER)
async def test_a_half_open_circuit_counts_every_call_until_it_closes(make_key, local_service) -> None:
    # given an open circuit whose reset timeout has passed, and a recovered upstream
    secret = await sync_to_async(make_key)()
    local_service.status = 503
    assert [(await call(secret)).status_code for _ in range(2)] == [502, 502]
    assert await circuit_state() == "open"
    local_service.status = 200
    await asyncio.sleep(0.4)

    # when calls succeed, one after the other, in the same process
    assert (await call(secret)).status_code == 200
    assert await circuit_state() == "half_open"
    assert (await call(secret)).status_code == 200

    # then the second success went through the breaker too (no fast path from a probe), and closed it
    assert await circuit_state() == "closed"


GUARDED = {"REQUIRE_HTTPS": False, "ALLOW_PRIVATE_ENDPOINTS": False}


@pytest.mark.parametrize("stream", [False, True])
async def test_the_proxy_never_connects_to_an_upstream_that_now_resolves_privately(
    make_key, local_service, stream: bool
) -> None:
    # given a version published while private endpoints were allowed (or whose DNS answer changed since its checks)
    secret = await sync_to_async(make_key)()
    answered = await call(secret, stream=stream)
    assert answered.status_code == 200
    if stream:
        assert b"[DONE]" in b"".join([chunk async for chunk in answered.streaming_content])
    seen = local_service.requests

    # when production's SSRF guard is on
    with override_settings(MARKETPLACE_PUBLISHING=GUARDED):
        refused = await call(secret, stream=stream)

    # then the call is refused as an unreachable upstream, nothing reached the private address, and it is on record
    assert refused.status_code == 502, refused.content
    assert refused.json()["error"]["code"] == "external_service_error"
    assert local_service.requests == seen
    await sync_to_async(drain_ledger)()
    statuses = [r async for r in UsageRecord.objects.order_by("started_at").values_list("status_code", flat=True)]
    assert statuses == [200, 502]
