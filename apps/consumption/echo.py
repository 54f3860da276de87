"""The built-in `echo` upstream: deterministic OpenAI-shaped answers computed in-process, without any network (one
upstream adapter among others; its usage numbers are exact for the billing tokenizer, tokenizer.py)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import secrets
import struct
import sys
import time
from array import array
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from apps.consumption.estimates import COMPLETIONS_DEFAULT_MAX_TOKENS
from apps.consumption.tokenizer import (
    TOKEN_RE,
    FieldErrors,
    count_tokens,
    read_messages,
    split_pieces,
)
from llm_infra_django.errors import ValidationError

REPLY_PREFIX = "Echo: "
EMBEDDING_DIMENSIONS = 64
MAX_EMBEDDING_DIMENSIONS = 4096
MAX_EMBEDDING_INPUTS = 2048
MAX_CHOICES = 128
MAX_STOP_SEQUENCES = 4
SYSTEM_FINGERPRINT = "fp_echo_v1"
SSE_DONE = b"data: [DONE]\n\n"


# --- Validation ---------------------------------------------------------------------------------------------


def _require_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ValidationError(fields={"body": ["The request body must be a JSON object."]})
    return body


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _integer(
    body: Mapping[str, Any], name: str, errors: FieldErrors, *, minimum: int, maximum: int | None = None
) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not _is_int(value):
        errors.add(name, "Must be an integer.")
        return None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        errors.add(name, f"Must be {bound}.")
        return None
    return int(value)


def _number(body: Mapping[str, Any], name: str, errors: FieldErrors, minimum: float, maximum: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        errors.add(name, "Must be a number.")
    elif not minimum <= value <= maximum:
        errors.add(name, f"Must be between {minimum:g} and {maximum:g}.")


def _boolean(body: Mapping[str, Any], name: str, errors: FieldErrors) -> bool:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        errors.add(name, "Must be true or false.")
        return False
    return bool(value)


def _string(body: Mapping[str, Any], name: str, errors: FieldErrors) -> None:
    if body.get(name) is not None and not isinstance(body[name], str):
        errors.add(name, "Must be a string.")


def _stop_sequences(body: Mapping[str, Any], errors: FieldErrors) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    sequences = [stop] if isinstance(stop, str) else stop
    if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
        errors.add("stop", "Give a string or a list of strings.")
        return []
    if len(sequences) > MAX_STOP_SEQUENCES:
        errors.add("stop", f"At most {MAX_STOP_SEQUENCES} stop sequences.")
    if any(s == "" for s in sequences):
        errors.add("stop", "Stop sequences cannot be empty.")
    return [s for s in sequences if s]


def _sampling(
    body: Mapping[str, Any], errors: FieldErrors, *, streaming: bool, chat: bool
) -> tuple[int | None, int, bool]:
    """The parameters chat and completions share: (max tokens, n, include_usage). Sampling knobs are validated and
    have no effect: the echo provider is deterministic. `max_completion_tokens` (chat only) wins over `max_tokens`."""
    _number(body, "temperature", errors, 0, 2)
    _number(body, "top_p", errors, 0, 1)
    _number(body, "presence_penalty", errors, -2, 2)
    _number(body, "frequency_penalty", errors, -2, 2)
    _integer(body, "seed", errors, minimum=-(2**63), maximum=2**63 - 1)
    _string(body, "user", errors)
    max_tokens = _integer(body, "max_tokens", errors, minimum=1)
    if chat and body.get("max_completion_tokens") is not None:
        max_tokens = _integer(body, "max_completion_tokens", errors, minimum=1)
    n = _integer(body, "n", errors, minimum=1, maximum=MAX_CHOICES) or 1
    stream = _boolean(body, "stream", errors)
    include_usage = False
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, Mapping):
            errors.add("stream_options", "Must be an object.")
        elif not (stream or streaming):
            errors.add("stream_options", "Only allowed when stream is true.")
        else:
            include_usage = _boolean(options, "include_usage", errors)
    return max_tokens, n, include_usage


def _plain_text_only(body: Mapping[str, Any], errors: FieldErrors) -> None:
    response_format = body.get("response_format")
    if response_format is None:
        return
    if not isinstance(response_format, Mapping) or response_format.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        errors.add("response_format", "Give an object whose type is text, json_object or json_schema.")
    elif response_format["type"] != "text":
        errors.add("response_format", "The echo provider answers plain text only.")


# --- Generation ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    """One generated choice: its text, why it ended, and its exact token count."""

    text: str
    finish_reason: str
    completion_tokens: int


def generate(source: str, *, max_tokens: int | None = None, stop: Sequence[str] = ()) -> Generation:
    """The echo reply to `source`: `"Echo: " + source`, cut before the first stop sequence, then truncated to
    `max_tokens` tokens (finish_reason "length") — else finish_reason "stop"."""
    reply = REPLY_PREFIX + source
    cuts = [index for index in (reply.find(s) for s in stop if s) if index >= 0]
    if cuts:
        reply = reply[: min(cuts)]
    ends = [match.end() for match in TOKEN_RE.finditer(reply)]
    if max_tokens is not None and len(ends) > max_tokens:
        return Generation(reply[: ends[max_tokens - 1]] if max_tokens > 0 else "", "length", max(max_tokens, 0))
    return Generation(reply, "stop", len(ends))


@dataclass(frozen=True)
class _Plan:
    """A validated request: what each choice says and the exact usage."""

    prompt_tokens: int
    choices: list[Generation]
    include_usage: bool

    @property
    def usage(self) -> dict[str, int]:
        completion = sum(choice.completion_tokens for choice in self.choices)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
        }


def _room(max_tokens: int | None, prompt_tokens: int, context_length: int | None, field: str) -> int | None:
    """The generation limit: `max_tokens`, and no more than the context window leaves (400 when it is exceeded)."""
    if context_length is None:
        return max_tokens
    if prompt_tokens + (max_tokens or 0) > context_length:
        raise ValidationError(
            f"This model's maximum context length is {context_length} tokens; the request asks for {prompt_tokens} "
            f"prompt tokens" + (f" and {max_tokens} completion tokens." if max_tokens else "."),
            fields={field: ["The context window is exceeded."]},
            code="context_length_exceeded",
        )
    room = context_length - prompt_tokens
    return room if max_tokens is None else min(max_tokens, room)


# --- Chat completions ---------------------------------------------------------------------------------------


def _plan_chat(body: Any, *, streaming: bool, context_length: int | None) -> _Plan:
    body = _require_object(body)
    errors = FieldErrors()
    prompt_tokens, source = read_messages(body.get("messages"), errors)
    max_tokens, n, include_usage = _sampling(body, errors, streaming=streaming, chat=True)
    stop = _stop_sequences(body, errors)
    _plain_text_only(body, errors)
    if body.get("logprobs") or body.get("top_logprobs"):
        errors.add("logprobs", "The echo provider does not return log probabilities.")
    errors.raise_any()
    limit = _room(max_tokens, prompt_tokens, context_length, "messages")
    return _Plan(prompt_tokens, [generate(source, max_tokens=limit, stop=stop)] * n, include_usage)


def _identity(prefix: str, response_id: str | None, created: int | None) -> tuple[str, int]:
    return response_id or f"{prefix}{secrets.token_hex(12)}", int(time.time()) if created is None else created


def chat_completion(
    body: Mapping[str, Any],
    *,
    model: str,
    context_length: int | None = None,
    response_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Answer a `POST /chat/completions` body: the reply echoes the last user message ("Echo: <text>"), truncated
    to `max_tokens`/`max_completion_tokens` tokens (finish_reason "length") or cut at a `stop` sequence.

    Raises `ValidationError` naming the field for a malformed body, and with code `context_length_exceeded` when
    `context_length` is given and the prompt plus `max_tokens` do not fit. Only `id` (random unless
    `response_id`) and `created` (now unless given) vary between calls.
    """
    plan = _plan_chat(body, streaming=False, context_length=context_length)
    identifier, timestamp = _identity("chatcmpl-", response_id, created)
    return {
        "id": identifier,
        "object": "chat.completion",
        "created": timestamp,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {
                "index": index,
                "message": {"role": "assistant", "content": choice.text, "refusal": None},
                "logprobs": None,
                "finish_reason": choice.finish_reason,
            }
            for index, choice in enumerate(plan.choices)
        ],
        "usage": plan.usage,
    }


def _chat_chunks(plan: _Plan, *, model: str, identifier: str, timestamp: int) -> Iterator[dict[str, Any]]:
    def chunk(choices: list[dict[str, Any]]) -> dict[str, Any]:
        data = {
            "id": identifier,
            "object": "chat.completion.chunk",
            "created": timestamp,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
        }
        if plan.include_usage:
            data["usage"] = None
        return data

    def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]

    for index, generation in enumerate(plan.choices):
        yield chunk(choice(index, {"role": "assistant", "content": ""}))
        for piece in split_pieces(generation.text):
            yield chunk(choice(index, {"content": piece}))
        yield chunk(choice(index, {}, generation.finish_reason))
    if plan.include_usage:
        yield {**chunk([]), "usage": plan.usage}


def stream_chat_completion(
    body: Mapping[str, Any],
    *,
    model: str,
    context_length: int | None = None,
    response_id: str | None = None,
    created: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The streamed form of `chat_completion`, as `chat.completion.chunk` dicts: per choice, a role chunk, one
    chunk per token (whitespace travels with the following token, so the contents concatenate to the
    non-streamed reply) and a chunk with `finish_reason`; then, when `stream_options.include_usage` is true, a
    final chunk with empty `choices` and the usage (every other chunk then carries `"usage": null`).

    The body is validated here, before the iterator is returned: a bad body raises before any chunk exists.
    """
    plan = _plan_chat(body, streaming=True, context_length=context_length)
    identifier, timestamp = _identity("chatcmpl-", response_id, created)
    return _chat_chunks(plan, model=model, identifier=identifier, timestamp=timestamp)


# --- Legacy completions -------------------------------------------------------------------------------------


def _read_prompts(prompt: Any, errors: FieldErrors) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(_is_int(p) or isinstance(p, list) for p in prompt):
        errors.add("prompt", "The echo provider takes text prompts; token id arrays are not supported.")
    else:
        errors.add("prompt", "Give a string or a non-empty list of strings.")
    return []


def _plan_completion(body: Any, *, streaming: bool, context_length: int | None) -> _Plan:
    body = _require_object(body)
    errors = FieldErrors()
    prompts = _read_prompts(body.get("prompt"), errors)
    max_tokens, n, include_usage = _sampling(body, errors, streaming=streaming, chat=False)
    stop = _stop_sequences(body, errors)
    if body.get("echo"):
        errors.add("echo", "The echo provider does not repeat the prompt (echo=true is not supported).")
    if body.get("logprobs"):
        errors.add("logprobs", "The echo provider does not return log probabilities.")
    if body.get("suffix"):
        errors.add("suffix", "The echo provider does not support suffixes.")
    errors.raise_any()
    if body.get("max_tokens") is None:
        max_tokens = COMPLETIONS_DEFAULT_MAX_TOKENS
    choices: list[Generation] = []
    prompt_tokens = 0
    for index, prompt in enumerate(prompts):
        tokens = count_tokens(prompt)
        field = "prompt" if isinstance(body["prompt"], str) else f"prompt[{index}]"
        limit = _room(max_tokens, tokens, context_length, field)
        choices += [generate(prompt, max_tokens=limit, stop=stop)] * n
        prompt_tokens += tokens
    return _Plan(prompt_tokens, choices, include_usage)


def completion(
    body: Mapping[str, Any],
    *,
    model: str,
    context_length: int | None = None,
    response_id: str | None = None,
    created: int | None = None,
) -> dict[str, Any]:
    """Answer a legacy `POST /completions` body: one choice per prompt (times `n`), each "Echo: <prompt>" truncated
    to `max_tokens` (default 16, as OpenAI's) tokens. Prompt tokens are the prompts' tokens (no overhead)."""
    plan = _plan_completion(body, streaming=False, context_length=context_length)
    identifier, timestamp = _identity("cmpl-", response_id, created)
    return {
        "id": identifier,
        "object": "text_completion",
        "created": timestamp,
        "model": model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
        "choices": [
            {"index": index, "text": choice.text, "logprobs": None, "finish_reason": choice.finish_reason}
            for index, choice in enumerate(plan.choices)
        ],
        "usage": plan.usage,
    }


def _completion_chunks(plan: _Plan, *, model: str, identifier: str, timestamp: int) -> Iterator[dict[str, Any]]:
    def chunk(index: int | None, text: str = "", finish_reason: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": identifier,
            "object": "text_completion",
            "created": timestamp,
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": []
            if index is None
            else [{"index": index, "text": text, "logprobs": None, "finish_reason": finish_reason}],
        }
        if plan.include_usage:
            data["usage"] = None
        return data

    for index, generation in enumerate(plan.choices):
        for piece in split_pieces(generation.text):
            yield chunk(index, piece)
        yield chunk(index, "", generation.finish_reason)
    if plan.include_usage:
        yield {**chunk(None), "usage": plan.usage}


def stream_completion(
    body: Mapping[str, Any],
    *,
    model: str,
    context_length: int | None = None,
    response_id: str | None = None,
    created: int | None = None,
) -> Iterator[dict[str, Any]]:
    """The streamed form of `completion`: one `text_completion` chunk per token, a chunk with `finish_reason` per
    choice, and the usage chunk when `stream_options.include_usage` is true. Validates before returning."""
    plan = _plan_completion(body, streaming=True, context_length=context_length)
    identifier, timestamp = _identity("cmpl-", response_id, created)
    return _completion_chunks(plan, model=model, identifier=identifier, timestamp=timestamp)


# --- Async and SSE ------------------------------------------------------------------------------------------


async def _paced(chunks: Iterable[dict[str, Any]], delay: float) -> AsyncIterator[dict[str, Any]]:
    for chunk in chunks:
        yield chunk
        # Hand control back to the event loop between chunks (so a disconnect is noticed), optionally pacing them.
        await asyncio.sleep(delay)


def astream_chat_completion(
    body: Mapping[str, Any], *, model: str, delay: float = 0.0, **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """`stream_chat_completion` as an async iterator, `delay` seconds between chunks (validates before returning)."""
    return _paced(stream_chat_completion(body, model=model, **options), delay)


def astream_completion(
    body: Mapping[str, Any], *, model: str, delay: float = 0.0, **options: Any
) -> AsyncIterator[dict[str, Any]]:
    """`stream_completion` as an async iterator, `delay` seconds between chunks (validates before returning)."""
    return _paced(stream_completion(body, model=model, **options), delay)


def sse_event(chunk: Mapping[str, Any]) -> bytes:
    """One server-sent event carrying `chunk` as JSON (`data: {...}\\n\\n`); end a stream with `SSE_DONE`."""
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


# --- Embeddings ---------------------------------------------------------------------------------------------


def embedding_vector(value: str | Sequence[int], *, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector for a text (or a token id array): SHA-256 in counter mode over the input gives
    `dimensions` 32-bit words mapped to [-1, 1), normalised to length 1 and rounded to float32 (so the float and
    base64 encodings carry exactly the same numbers)."""
    if isinstance(value, str):
        seed = b"text\0" + value.encode("utf-8", "surrogatepass")
    else:
        seed = b"tokens\0" + ",".join(map(str, value)).encode()
    base = hashlib.sha256(seed)
    raw = bytearray()
    counter = 0
    while len(raw) < 4 * dimensions:
        block = base.copy()
        block.update(counter.to_bytes(4, "big"))
        raw += block.digest()
        counter += 1
    words = struct.unpack(f">{dimensions}I", raw[: 4 * dimensions])
    components = [word / 2**31 - 1.0 for word in words]
    norm = math.sqrt(sum(c * c for c in components)) or 1.0
    return array("f", (c / norm for c in components)).tolist()


def _base64_floats(vector: list[float]) -> str:
    packed = array("f", vector)
    if sys.byteorder == "big":
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode()


def _read_inputs(value: Any, errors: FieldErrors) -> list[str | list[int]]:
    """Texts or token id arrays, as OpenAI accepts them: a string, a list of strings, a list of token ids, or a list
    of token id lists."""
    if isinstance(value, str):
        items: list[Any] = [value]
    elif isinstance(value, list) and value and all(_is_int(v) for v in value):
        items = [value]
    elif (
        isinstance(value, list)
        and value
        and (all(isinstance(v, str) for v in value) or all(isinstance(v, list) for v in value))
    ):
        items = value
    else:
        errors.add("input", "Give a string, a list of strings, a token id array, or a list of token id arrays.")
        return []
    single = items is not value
    if len(items) > MAX_EMBEDDING_INPUTS:
        errors.add("input", f"At most {MAX_EMBEDDING_INPUTS} inputs per request.")
        return []
    for index, item in enumerate(items):
        path = "input" if single else f"input[{index}]"
        if isinstance(item, str):
            if not item:
                errors.add(path, "Inputs cannot be empty strings.")
        elif not item or not all(_is_int(token) and token >= 0 for token in item):
            errors.add(path, "A token id array is a non-empty list of non-negative integers.")
    return items


def embeddings(body: Mapping[str, Any], *, model: str) -> dict[str, Any]:
    """Answer a `POST /embeddings` body: one deterministic unit vector per input (`embedding_vector`), of
    `dimensions` components (default 64), as floats or, with `encoding_format` "base64", as little-endian float32
    bytes (the official SDK asks for base64 by default). Prompt tokens: each text's tokens, or each array's
    length."""
    body = _require_object(body)
    errors = FieldErrors()
    inputs = _read_inputs(body.get("input"), errors)
    dimensions = _integer(body, "dimensions", errors, minimum=1, maximum=MAX_EMBEDDING_DIMENSIONS)
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        errors.add("encoding_format", "Use float or base64.")
    _string(body, "user", errors)
    errors.raise_any()
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        vector = embedding_vector(item, dimensions=dimensions or EMBEDDING_DIMENSIONS)
        tokens += count_tokens(item) if isinstance(item, str) else len(item)
        data.append(
            {
                "object": "embedding",
                "index": index,
                "embedding": _base64_floats(vector) if encoding == "base64" else vector,
            }
        )
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
