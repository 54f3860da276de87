"""The proxy in-process (ASGI test client): shapes, headers, errors, ledger records, settlement."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from apps.consumption.models import UsageRecord, UsageRollup
from tests.apps.consumption.conftest import drain_ledger

pytestmark = pytest.mark.django_db(transaction=True)

CHAT = {"model": "acme/echo", "messages": [{"role": "user", "content": "Hello there, general Kenobi"}]}


async def wait_for_record(request_id: str, seconds: float = 5.0) -> UsageRecord:
    """Stream records are written when the stream ends, just after the last byte: poll briefly."""
    for _ in range(int(seconds / 0.05)):
        await sync_to_async(drain_ledger)()
        record = await UsageRecord.objects.filter(request_id=request_id).afirst()
        if record is not None:
            return record
        await asyncio.sleep(0.05)
    raise AssertionError(f"no usage record for {request_id}")


def auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def post(path: str, body: object, secret: str | None, **headers: str):
    extra = auth(secret) if secret else {}
    return await AsyncClient().post(
        path,
        json.dumps(body) if not isinstance(body, bytes) else body,
        content_type="application/json",
        headers={**extra, **headers},
    )


async def test_chat_completion_is_answered_billed_and_recorded(api_key: str) -> None:
    # when
    response = await post("/v1/chat/completions", {**CHAT, "max_tokens": 5}, api_key)

    # then the echo answer comes back with usage, cost and headers
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"].startswith("Echo")
    usage = body["usage"]
    assert usage["completion_tokens"] == 5
    expected = Decimal(usage["prompt_tokens"]) * 1000 / 10**6 + Decimal(5) * 2000 / 10**6
    assert Decimal(response["X-Marketplace-Cost"]) == expected
    assert usage["cost"] == pytest.approx(float(expected))
    assert response["X-Request-ID"]

    # and the ledger holds exactly one record, rolled up
    await sync_to_async(drain_ledger)()
    record = await UsageRecord.objects.aget(request_id=response["X-Request-ID"])
    assert (record.prompt_tokens, record.completion_tokens, record.status_code) == (usage["prompt_tokens"], 5, 200)
    assert record.cost == expected and not record.estimated and not record.stream
    rollup = await UsageRollup.objects.aget(api_key_id=record.api_key_id)
    assert rollup.requests == 1 and rollup.cost == expected


async def test_completions_and_embeddings(api_key: str) -> None:
    completion = await post("/v1/completions", {"model": "acme/echo", "prompt": "Say this", "max_tokens": 3}, api_key)
    assert completion.status_code == 200, completion.content
    assert completion.json()["object"] == "text_completion"
    embedding = await post("/v1/embeddings", {"model": "acme/echo", "input": ["a b", "c"]}, api_key)
    assert embedding.status_code == 200, embedding.content
    assert len(embedding.json()["data"]) == 2
    await sync_to_async(drain_ledger)()
    assert await UsageRecord.objects.acount() == 2


async def test_models_lists_what_the_key_may_use(api_key: str) -> None:
    response = await AsyncClient().get("/v1/models", headers=auth(api_key))
    assert response.status_code == 200
    assert [m["id"] for m in response.json()["data"]] == ["acme/echo"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        (b"{not json", 400, "body"),
        ({"messages": []}, 400, "model"),
        ({**CHAT, "max_tokens": 0}, 400, "max_tokens"),
        ({**CHAT, "max_tokens": "5"}, 400, "max_tokens"),
        ({"model": "acme/echo", "messages": "hi"}, 400, "messages"),
        ({**CHAT, "model": "acme/nope"}, 404, None),
        ({**CHAT, "model": "no-slash"}, 400, "model"),
    ],
)
async def test_bad_requests_never_reach_the_upstream(api_key: str, body: object, status: int, param) -> None:
    response = await post("/v1/chat/completions", body, api_key)
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    if param:
        assert error["param"] == param
    assert await UsageRecord.objects.acount() == 0


async def test_authentication_errors(api_key: str) -> None:
    for secret in (None, "mk_" + "x" * 43, "not-a-key"):
        response = await post("/v1/chat/completions", CHAT, secret)
        assert response.status_code == 401
        assert response.json()["error"]["type"] == "authentication_error"


async def test_oversized_body_is_refused(api_key: str) -> None:
    huge = {**CHAT, "messages": [{"role": "user", "content": "x " * 600_000}]}
    response = await post("/v1/chat/completions", huge, api_key)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    # above Django's own upload limit too: refused from Content-Length, never a 500
    larger = {**CHAT, "messages": [{"role": "user", "content": "x " * 2_000_000}]}
    response = await post("/v1/chat/completions", larger, api_key)
    assert response.status_code == 413
    assert response.json()["error"]["param"] == "body"


async def test_rate_limit_headers_and_429(make_key, echo_service) -> None:
    secret = await sync_to_async(make_key)(rpm_limit=2, tpm_limit=100_000)
    first = await post("/v1/chat/completions", {**CHAT, "max_tokens": 2}, secret)
    assert first["X-RateLimit-Limit-Requests"] == "2"
    assert first["X-RateLimit-Remaining-Requests"] == "1"
    assert first["X-RateLimit-Limit-Tokens"] == "100000"
    await post("/v1/chat/completions", {**CHAT, "max_tokens": 2}, secret)
    third = await post("/v1/chat/completions", {**CHAT, "max_tokens": 2}, secret)
    assert third.status_code == 429
    assert int(third["Retry-After"]) >= 1
    assert third.json()["error"]["type"] == "rate_limit_error"


async def test_budget_exhausted_is_402(make_key, echo_service) -> None:
    secret = await sync_to_async(make_key)(budget_day_usd="0.05")
    statuses = [(await post("/v1/chat/completions", {**CHAT, "max_tokens": 8}, secret)).status_code for _ in range(5)]
    assert statuses.count(200) >= 1 and statuses[-1] == 402


async def test_streaming_relays_events_and_bills_from_the_usage_chunk(api_key: str) -> None:
    response = await post(
        "/v1/chat/completions",
        {**CHAT, "max_tokens": 4, "stream": True, "stream_options": {"include_usage": True}},
        api_key,
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/event-stream")
    raw = b"".join([chunk async for chunk in response.streaming_content])
    events = [e for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"data: [DONE]"
    usage = json.loads(events[-2][6:])["usage"]
    assert usage["completion_tokens"] == 4 and "cost" in usage
    record = await wait_for_record(response["X-Request-ID"])
    assert record.stream and record.completion_tokens == 4 and not record.estimated


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/completions"])
async def test_a_stream_that_did_not_ask_for_usage_is_still_billed_exactly(api_key: str, path: str) -> None:
    # given a streamed call without stream_options (what the OpenAI SDK sends by default)
    body = {**CHAT, "max_tokens": 4, "stream": True}
    if path == "/v1/completions":
        body = {"model": CHAT["model"], "prompt": "Say hello", "max_tokens": 4, "stream": True}
    response = await post(path, body, api_key)
    raw = b"".join([chunk async for chunk in response.streaming_content])

    # then the client gets no usage chunk it did not ask for, and the record holds the provider's exact usage
    chunks = [json.loads(e[6:]) for e in raw.split(b"\n\n") if e and e != b"data: [DONE]"]
    assert chunks and all(chunk.get("choices") for chunk in chunks)
    record = await wait_for_record(response["X-Request-ID"])
    assert record.stream and record.completion_tokens == 4 and not record.estimated


async def test_the_database_being_away_is_a_503_in_openai_shape(api_key: str, monkeypatch) -> None:
    """A key not in the process's memory needs the database: when it is down the answer is a 503 the SDKs retry,
    never a 500."""
    from django.db import OperationalError

    from apps.consumption import key_lookup, selectors

    def down(*args: object, **kwargs: object) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(key_lookup, "load_key", down)
    response = await post("/v1/chat/completions", CHAT, api_key)
    assert response.status_code == 503, response.content
    assert response.json()["error"] == {
        "message": "The database is unavailable.",
        "type": "api_error",
        "code": "database_unavailable",
        "param": None,
    }
    assert response["Retry-After"]

    monkeypatch.undo()
    monkeypatch.setattr(selectors, "models_for_key", down)
    listing = await AsyncClient().get("/v1/models", headers=auth(api_key))
    assert listing.status_code == 503, listing.content
    assert listing.json()["error"]["code"] == "database_unavailable"
