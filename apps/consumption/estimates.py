"""Validation and estimates, before admission: the fields that decide what a call may cost are checked, the prompt
counted (and bounded above), and the completion reserved; nothing reaches the upstream before this."""

from __future__ import annotations

from typing import Any

import orjson

from apps.consumption import tokenizer
from apps.consumption.call import Call
from apps.consumption.conf import consumption_settings
from apps.consumption.pricing import reservation_price
from apps.consumption.protocol import MAX_AMOUNT
from apps.publishing.selectors import Route
from apps.tenancy.money import to_units
from llm_infra_django.errors import ValidationError

# The legacy completions API generates 16 tokens when `max_tokens` is not given; chat has no default limit.
COMPLETIONS_DEFAULT_MAX_TOKENS = 16


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError(
            "The request body is not valid JSON.", fields={"body": ["Invalid JSON."]}, code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.", fields={"body": ["Not an object."]})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("You must provide a model parameter.", fields={"model": ["Required string."]})
    return body


def _int_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"'{name}' must be an integer ≥ {minimum}.", fields={name: [f"Integer ≥ {minimum}."]})
    return value


def _prompt_tokens(kind: str, body: dict[str, Any]) -> int:
    if kind == "chat":
        return tokenizer.count_chat_prompt_tokens(body.get("messages"))
    value = body.get("prompt" if kind == "completions" else "input")
    field_name = "prompt" if kind == "completions" else "input"
    if isinstance(value, str):
        return tokenizer.count_tokens(value)
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return sum(tokenizer.count_tokens(item) for item in value)
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return len(value)
        if all(isinstance(item, list) and all(isinstance(i, int) for i in item) for item in value):
            return sum(len(item) for item in value)
    raise ValidationError(
        f"'{field_name}' must be a string or a list of strings or token ids.",
        fields={field_name: ["String, list of strings, or token ids."]},
    )


def _prompt_bound(kind: str, body: dict[str, Any], counted: int) -> int:
    """An upper bound of the prompt tokens any upstream can count: byte-level BPE tokenizers never make more tokens
    than the text has UTF-8 bytes, and the JSON of the messages exceeds their text by more than any per-message
    overhead. Reservations use it, so actual usage never costs more than was reserved and budgets and quotas hold."""
    value = body.get("messages") if kind == "chat" else body.get("prompt" if kind == "completions" else "input")
    if isinstance(value, list) and value and all(isinstance(item, (int, list)) for item in value):
        return counted  # token ids: the count is exact
    return max(counted, len(orjson.dumps(value)) + 3)


def estimate(call: Call, routes: list[Route]) -> None:
    """Validate the fields that decide cost and count the prompt; nothing reaches the upstream before this. Of the
    routes a call may take (its first choice and fallbacks), those whose context cannot hold it are dropped
    (`call.candidates` keeps the others); the reservation covers the most expensive that remain."""
    body, kind = call.body, call.kind
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be a boolean.", fields={"stream": ["Boolean."]})
    if stream and kind == "embeddings":
        raise ValidationError("Embeddings cannot be streamed.", fields={"stream": ["Not supported."]})
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ValidationError("'stream_options' must be an object.", fields={"stream_options": ["Object."]})
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high
        ):
            raise ValidationError(f"'{name}' must be a number from {low} to {high}.", fields={name: ["Out of range."]})
    n = _bounded_int(body, "n", consumption_settings.MAX_N) or 1
    widest = max(route.context_length for route in routes)
    max_tokens = _bounded_int(body, "max_tokens", widest)
    if kind == "chat":
        max_tokens = _bounded_int(body, "max_completion_tokens", widest) or max_tokens
    prompt = _prompt_tokens(kind, body)
    fitting = [
        route
        for route in routes
        if prompt <= route.context_length and (max_tokens is None or max_tokens <= route.context_length)
    ]
    if not fitting:
        if prompt > widest or max_tokens is None:
            raise ValidationError(
                f"The prompt has {prompt} tokens; this model's context length is {widest}.",
                fields={"messages" if kind == "chat" else "prompt": ["Too long."]},
                code="context_length_exceeded",
            )
        field_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
        raise ValidationError(
            f"'{field_name}' and the prompt do not fit this model's context length.",
            fields={field_name: ["Too large for the prompt and this model's context length."]},
        )
    if kind == "embeddings":
        completion = 0
    elif max_tokens is None:
        default = COMPLETIONS_DEFAULT_MAX_TOKENS if kind == "completions" else consumption_settings.DEFAULT_MAX_TOKENS
        room = min(route.context_length for route in fitting) - prompt
        completion = max(1, min(default, room))
        # The upstream is asked for no more than was reserved: what it generates beyond is never billed.
        body["max_tokens"] = completion
    else:
        completion = max_tokens
    call.candidates = fitting
    call.stream = stream
    call.include_usage = bool(options and options.get("include_usage"))
    call.prompt_estimate = prompt
    # The echo provider counts with our own tokenizer, so its count is exact; any other upstream may count more.
    exact = all(route.protocol == "echo" for route in fitting)
    call.prompt_bound = prompt if exact else _prompt_bound(kind, body, prompt)
    call.completion_estimate = completion * n
    call.reservation = max(reservation_price(route, call.prompt_bound, call.completion_estimate) for route in fitting)
    field_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if call.prompt_bound + call.completion_estimate > MAX_AMOUNT or to_units(call.reservation) > MAX_AMOUNT:
        raise ValidationError(
            "This request could cost more than one call may reserve; lower max_tokens or n.",
            fields={field_name: ["Too large for one call."]},
        )


def _bounded_int(body: dict[str, Any], name: str, maximum: int) -> int | None:
    value = _int_field(body, name, 1)
    if value is not None and value > maximum:
        raise ValidationError(f"'{name}' must be at most {maximum}.", fields={name: [f"At most {maximum}."]})
    return value
