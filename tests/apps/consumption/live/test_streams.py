"""Streams are always billed: from the final usage chunk, else from the delivered text, also when the client
leaves (the upstream request is then closed)."""

from __future__ import annotations

import time

import httpx
import pytest

from apps.consumption.models import UsageRecord

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def wait_for(predicate, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def stream_body(**extra):
    return {"model": "acme/local", "messages": [{"role": "user", "content": "hi"}], "stream": True, **extra}


def test_usage_comes_from_the_final_chunk(start_servers, api_key, local_service) -> None:
    (base,) = start_servers(1)
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=stream_body(), headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        events = [line for line in response.iter_lines() if line]
        request_id = response.headers["X-Request-ID"]
    assert events[-1] == "data: [DONE]"
    assert not any('"usage"' in event for event in events), "the client did not ask for the usage chunk"
    assert local_service.bodies[-1]["stream_options"] == {"include_usage": True}
    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first())
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (7, 8, False)
    assert record.ttft_ms is not None and record.stream


def test_without_upstream_usage_the_delivered_text_is_counted_and_flagged(
    start_servers, api_key, local_service
) -> None:
    local_service.include_usage = False
    (base,) = start_servers(1)
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=stream_body(), headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        list(response.iter_lines())
        request_id = response.headers["X-Request-ID"]
    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first())
    assert record.estimated and record.completion_tokens == 8


def test_client_disconnect_closes_the_upstream_and_bills_the_delivered_tokens(
    start_servers, api_key, local_service
) -> None:
    # given an upstream streaming 50 words slowly
    local_service.reply_words = 50
    local_service.chunk_delay = 0.1
    (base,) = start_servers(1)

    # when the client reads two chunks and leaves
    with httpx.stream(
        "POST", f"{base}/v1/chat/completions", json=stream_body(), headers={"Authorization": f"Bearer {api_key}"}
    ) as response:
        request_id = response.headers["X-Request-ID"]
        received = 0
        for line in response.iter_lines():
            if line.startswith("data: "):
                received += 1
                if received == 2:
                    break

    # then the upstream sees its connection closed, and the delivered part is billed
    wait_for(lambda: local_service.disconnected >= 1)
    record = wait_for(lambda: UsageRecord.objects.filter(request_id=request_id).first())
    assert record.status_code == 499 and record.error_code == "client_disconnected"
    assert record.estimated
    assert 2 <= record.completion_tokens < 50
    assert record.cost > 0
