"""Screening of a proxied call, when configured: the Policy Engine's decision, and Shield's scan of the prompt and
of the response (allow, warn, redact or block; each client fails open or closed as its settings say)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson

from apps.consumption.conf import consumption_settings
from llm_infra_django.errors import PolicyViolationError
from llm_infra_django.upstreams import get_policy_engine_client, get_shield_client
from llm_infra_django.upstreams.shield import Direction

SSE_PREFIX = b"data: "


class Spot:
    """Where one text of a body lives (`container[key]`), so a redaction can replace it there."""

    __slots__ = ("container", "key")

    def __init__(self, container: Any, key: Any) -> None:
        self.container, self.key = container, key

    @property
    def text(self) -> str:
        return str(self.container[self.key])

    def replace(self, text: str) -> None:
        self.container[self.key] = text


def prompt_spots(kind: str, body: dict[str, Any]) -> list[Spot]:
    """The texts of a request: each chat message's content (and text parts), the completion prompt(s), the inputs
    to embed (token ids are not text)."""
    spots: list[Spot] = []
    if kind == "chat":
        for message in body.get("messages") or []:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                spots.append(Spot(message, "content"))
            elif isinstance(content, list):
                spots.extend(
                    Spot(part, "text")
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
        return spots
    name = "prompt" if kind == "completions" else "input"
    value = body.get(name)
    if isinstance(value, str):
        return [Spot(body, name)]
    if isinstance(value, list):
        return [Spot(value, index) for index, item in enumerate(value) if isinstance(item, str)]
    return []


def answer_spots(body: dict[str, Any]) -> list[Spot]:
    """The texts of an upstream's answer: each choice's message content (chat) or text (completions)."""
    spots = []
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            spots.append(Spot(message, "content"))
        elif isinstance(choice.get("text"), str):
            spots.append(Spot(choice, "text"))
    return spots


async def _scan(spots: list[Spot], *, direction: Direction, tenant: str, model: str) -> bool:
    """Scan each text (concurrently); a block raises, a redaction replaces the text. Returns whether any changed."""
    shield = get_shield_client()
    texts = [spot.text for spot in spots]
    verdicts = await asyncio.gather(
        *(shield.ascan(text, direction=direction, tenant=tenant, model=model) for text in texts)
    )
    blocked = [reason.__dict__ for verdict in verdicts if verdict.blocked for reason in verdict.reasons]
    if any(verdict.blocked for verdict in verdicts):
        what = "prompt" if direction == "prompt" else "response"
        raise PolicyViolationError(f"The {what} was blocked by the safety scan.", violations=blocked)
    changed = False
    for spot, text, verdict in zip(spots, texts, verdicts, strict=True):
        if verdict.decision == "redact" and verdict.text != text:
            spot.replace(verdict.text)
            changed = True
    return changed


async def screen_request(
    kind: str, body: dict[str, Any], *, tenant: str, model: str, key_id: str, category: str
) -> bool:
    """The Policy Engine's decision (403 on a violation), then Shield's scan of the prompt (403 when blocked; redacted
    texts replaced in `body`). Returns whether the prompt changed (its tokens must then be counted again)."""
    policy, shield = get_policy_engine_client(), get_shield_client()
    if policy.is_configured():
        decision = await policy.aevaluate(
            "consumption",
            tenant=tenant,
            resource={"model": model, "category": category},
            context={"key_id": key_id, "endpoint": kind},
        )
        decision.raise_for_violations()
    if not shield.is_configured():
        return False
    spots = prompt_spots(kind, body)
    return bool(spots) and await _scan(spots, direction="prompt", tenant=tenant, model=model)


def screens_responses() -> bool:
    """Whether answers are scanned before they reach the client (Shield configured and `SHIELD_RESPONSES` on)."""
    return bool(consumption_settings.SHIELD_RESPONSES) and get_shield_client().is_configured()


async def screen_answer(body: dict[str, Any], *, tenant: str, model: str) -> None:
    """Scan an upstream's answer: 403 when blocked; redacted texts replaced in `body`."""
    spots = answer_spots(body)
    if spots:
        await _scan(spots, direction="response", tenant=tenant, model=model)


# --- Streams: screened whole, before their first byte reaches the client ----------------------------------------


def _chunk(event: bytes) -> dict[str, Any] | None:
    data = event[len(SSE_PREFIX) :].strip() if event.startswith(SSE_PREFIX) else b""
    if not data or data == b"[DONE]":
        return None
    try:
        chunk = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return chunk if isinstance(chunk, dict) else None


def _content_of(choice: dict[str, Any]) -> tuple[Any, str] | None:
    """(container, key) of a streamed choice's text: `delta.content` (chat) or `text` (completions)."""
    delta = choice.get("delta")
    if isinstance(delta, dict) and isinstance(delta.get("content"), str):
        return delta, "content"
    if isinstance(choice.get("text"), str):
        return choice, "text"
    return None


async def screen_stream(events: list[bytes], *, tenant: str, model: str) -> list[bytes]:
    """Scan a whole buffered stream: the text of each choice, joined across its chunks. Blocked: 403. Redacted: each
    such choice's text is sent whole, redacted, in its first text chunk (later chunks carry no text). Returns the
    events to send."""
    chunks = [_chunk(event) for event in events]
    parts: dict[int, list[tuple[int, Any, str]]] = {}
    for position, chunk in enumerate(chunks):
        for choice in (chunk or {}).get("choices") or []:
            found = _content_of(choice) if isinstance(choice, dict) else None
            if found is not None:
                index = choice.get("index", 0)
                parts.setdefault(index if isinstance(index, int) else 0, []).append((position, *found))
    texts = {index: {"text": "".join(str(c[k]) for _, c, k in found)} for index, found in parts.items()}
    spots = [Spot(holder, "text") for holder in texts.values()]
    if not spots or not await _scan(spots, direction="response", tenant=tenant, model=model):
        return events
    changed: set[int] = set()
    for index, pieces in parts.items():
        for order, (position, container, key) in enumerate(pieces):
            container[key] = texts[index]["text"] if order == 0 else ""
            changed.add(position)
    return [
        SSE_PREFIX + orjson.dumps(chunks[position]) + b"\n\n" if position in changed else event
        for position, event in enumerate(events)
    ]


async def replay(events: list[bytes]) -> AsyncIterator[bytes]:
    """Buffered events as a stream again."""
    for event in events:
        yield event
