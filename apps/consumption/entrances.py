"""The proxy's other entrances, beside a proxied call (proxy.handle): the model list of `GET /v1/models` and the
native consume endpoint, each answered as a `Reply` like a call."""

from __future__ import annotations

from typing import Any

import orjson

from apps.consumption import flags, key_lookup, proxy, selectors
from apps.consumption.answers import Reply, failure_reply, json_reply
from apps.consumption.models import Scope
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AuthenticationError, ValidationError


async def list_models(*, authorization: str | None, request_id: str) -> Reply:
    """The models the key may use, as OpenAI's model list — routed catalog models (ids `<owner>/<model-slug>`, with
    `offers`: how many offers serve them, and their lowest prices) and services (ids `<publisher>/<service>`),
    `owned_by` the owner's or publisher's slug — each with OpenRouter's extra fields: `category`, `context_length`
    and `pricing` (see `models_for_key`)."""
    try:
        key = await key_lookup.authenticate(authorization)
        if await flags.ais_revoked(key):
            raise AuthenticationError("This API key has been revoked.", code="invalid_api_key")
        key_lookup.require_scope(key, Scope.CONSUME)
        rows = await database_sync_to_async(selectors.models_for_key)(key)
    except Exception as exc:
        return failure_reply(exc, request_id)
    data = [
        {
            "id": row["model_id"],
            "object": "model",
            "created": row["created"],
            "owned_by": row["publisher"],
            "category": row["category"],
            "context_length": row["context_length"],
            "pricing": row["pricing"],
            **({"offers": row["offers"]} if "offers" in row else {}),
        }
        for row in rows
    ]
    return json_reply({"object": "list", "data": data}, request_id)


async def consume(service_id: str, *, authorization: str | None, body: bytes, request_id: str) -> Reply:
    """The native endpoint: `{prompt, max_tokens, temperature, metadata}` → `{request_id, response, usage, cost,
    latency_ms}` on the service's latest active version (a chat call underneath)."""
    try:
        native = _native_body(body)
        model_id = await database_sync_to_async(selectors.model_id_of_service)(service_id)
        prompt = native.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValidationError("'prompt' must be a non-empty string.", fields={"prompt": ["Required string."]})
        metadata = native.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("'metadata' must be an object.", fields={"metadata": ["Object."]})
        chat: dict[str, Any] = {"model": model_id, "messages": [{"role": "user", "content": prompt}]}
        for name in ("max_tokens", "temperature"):
            if native.get(name) is not None:
                chat[name] = native[name]
    except Exception as exc:
        return failure_reply(exc, request_id)
    return await proxy.handle("chat", authorization=authorization, body=chat, request_id=request_id, native=True)


def _native_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ValidationError("The request body is not valid JSON.", fields={"body": ["Invalid JSON."]}) from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.", fields={"body": ["Not an object."]})
    return body
