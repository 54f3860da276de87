"""Shield screens prompts and responses (blocking or redacting them), streams included, failing open or closed as
configured; against a real local Shield server and a real local upstream."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import override_settings

from apps.consumption.models import UsageRecord
from llm_infra_django.resilience.breaker import breaker
from tests.apps.consumption.test_proxy import post, wait_for_record
from tests.llm_infra_django.upstreams.conftest import Answer, FakeUpstream, Received

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "secret@example.com"
CALL = {"model": "acme/local", "max_tokens": 10, "messages": [{"role": "user", "content": f"Mail {EMAIL} please"}]}
STREAM = {**CALL, "stream": True, "stream_options": {"include_usage": True}}


def verdict(received: Received) -> Answer:
    """Blocks texts with "forbidden" and responses containing "w3" when asked to; redacts the e-mail and "w1"."""
    text, direction = received.json["text"], received.json["direction"]
    if "forbidden" in text or (direction == "response" and Shield.block_responses and "w3" in text):
        return Answer.of(200, {"decision": "block", "reasons": [{"code": "policy", "message": "no"}]})
    if EMAIL in text or (direction == "response" and "w1" in text):
        redacted = text.replace(EMAIL, "[EMAIL]").replace("w1", "[W]")
        return Answer.of(200, {"decision": "redact", "redacted_text": redacted, "reasons": []})
    return Answer.of(200, {"decision": "allow", "reasons": []})


class Shield:
    block_responses = False


@pytest.fixture
def shield() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.responder = verdict
    Shield.block_responses = False
    breaker("upstream:shield").reset()
    yield server
    server.close()
    breaker("upstream:shield").reset()


def configured(url: str, *, fail_open: bool = False, **consumption: Any) -> override_settings:
    infra = {
        **settings.LLM_INFRA,
        "RETRY": {"MAX_ATTEMPTS": 1},
        "UPSTREAMS": {"shield": {"URL": url, "TIMEOUT_MS": 5000, "FAIL_OPEN": fail_open}},
    }
    return override_settings(LLM_INFRA=infra, MARKETPLACE_CONSUMPTION={**consumption})


async def stream_of(response: Any) -> tuple[str, list[dict[str, Any]]]:
    raw = b"".join([chunk async for chunk in response.streaming_content])
    chunks = [json.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]
    text = "".join((c.get("delta") or {}).get("content") or "" for chunk in chunks for c in chunk.get("choices", []))
    return text, chunks


async def test_a_prompt_is_redacted_before_it_reaches_the_upstream(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post("/v1/chat/completions", CALL, secret)
    assert response.status_code == 200, response.content
    assert local_service.bodies[-1]["messages"][0]["content"] == "Mail [EMAIL] please"
    assert [r.json["direction"] for r in shield.received] == ["prompt", "response"]


async def test_a_blocked_prompt_never_reaches_the_upstream(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post(
            "/v1/chat/completions", {**CALL, "messages": [{"role": "user", "content": "forbidden"}]}, secret
        )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_violation"
    assert local_service.requests == 0 and await UsageRecord.objects.acount() == 0


async def test_a_redacted_answer_is_what_the_client_gets(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post("/v1/chat/completions", CALL, secret)
    content = response.json()["choices"][0]["message"]["content"]
    assert "[W]" in content and "w1" not in content


async def test_a_blocked_answer_is_withheld_and_billed(shield: FakeUpstream, local_service: Any, make_key: Any) -> None:
    Shield.block_responses = True
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post("/v1/chat/completions", CALL, secret)
    assert response.status_code == 403, response.content
    assert "w0" not in response.content.decode()
    record = await wait_for_record(response["X-Request-ID"])
    assert (record.status_code, record.error_code) == (403, "response_blocked")
    assert record.cost > 0 and record.completion_tokens == 8  # the provider served it


async def test_a_redacted_stream_sends_no_unscreened_text(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post("/v1/chat/completions", STREAM, secret)
        text, chunks = await stream_of(response)
    assert text == "w0 [W] w2 w3 w4 w5 w6 w7"
    assert chunks[-1]["usage"]["completion_tokens"] == 8
    record = await wait_for_record(response["X-Request-ID"])
    assert record.status_code == 200 and record.completion_tokens == 8


async def test_a_blocked_stream_is_a_403_before_any_byte_and_billed(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    Shield.block_responses = True
    secret = await sync_to_async(make_key)()
    with configured(shield.url):
        response = await post("/v1/chat/completions", STREAM, secret)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "policy_violation"
    record = await wait_for_record(response["X-Request-ID"])
    assert (record.status_code, record.error_code, record.stream) == (403, "response_blocked", True)
    assert record.completion_tokens == 8 and record.cost > 0


@pytest.mark.parametrize("stream", [False, True])
async def test_a_shield_that_is_down_fails_closed_or_open_as_configured(
    shield: FakeUpstream, local_service: Any, make_key: Any, stream: bool
) -> None:
    secret = await sync_to_async(make_key)()
    body = STREAM if stream else CALL
    shield.responder = lambda received: (
        Answer.of(200, {"decision": "allow", "reasons": []})
        if received.json["direction"] == "prompt"
        else Answer.of(500, {"error": "down"})
    )
    with configured(shield.url, fail_open=False):
        closed = await post("/v1/chat/completions", body, secret)
    assert closed.status_code in (502, 503), closed.content
    record = await wait_for_record(closed["X-Request-ID"])
    assert record.status_code == closed.status_code and record.cost > 0

    breaker("upstream:shield").reset()
    with configured(shield.url, fail_open=True):
        opened = await post("/v1/chat/completions", body, secret)
    assert opened.status_code == 200


async def test_answers_are_not_scanned_when_switched_off(
    shield: FakeUpstream, local_service: Any, make_key: Any
) -> None:
    secret = await sync_to_async(make_key)()
    with configured(shield.url, SHIELD_RESPONSES=False):
        response = await post("/v1/chat/completions", CALL, secret)
    assert response.status_code == 200
    assert [r.json["direction"] for r in shield.received] == ["prompt"]
    assert "w1" in response.json()["choices"][0]["message"]["content"]
