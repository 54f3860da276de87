"""The OpenAI-compatible endpoints (`/v1/...`) and the native consume endpoint: thin async views over the proxy."""

from __future__ import annotations

import orjson
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.consumption import flags, proxy, runtime, selectors
from apps.consumption.models import Scope
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AuthenticationError, ValidationError


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponse:
    return await proxy.handle(request, "chat")


@csrf_exempt
@require_POST
async def completions(request: HttpRequest) -> HttpResponse:
    return await proxy.handle(request, "completions")


@csrf_exempt
@require_POST
async def embeddings(request: HttpRequest) -> HttpResponse:
    return await proxy.handle(request, "embeddings")


@require_GET
async def models(request: HttpRequest) -> HttpResponse:
    """The models the key may use, as OpenAI's model list (ids `<publisher>/<service>`, `owned_by` the publisher's
    slug), each with OpenRouter's extra fields: `category`, `context_length` and `pricing` (see `models_for_key`)."""
    request_id = getattr(request, "request_id", "")
    try:
        key = await runtime.authenticate(request.headers.get("Authorization"))
        if await flags.ais_revoked(key):
            raise AuthenticationError("This API key has been revoked.", code="invalid_api_key")
        runtime.require_scope(key, Scope.CONSUME)
        rows = await database_sync_to_async(selectors.models_for_key)(key)
    except Exception as exc:
        return proxy.failure_response(exc, request_id)
    data = [
        {
            "id": row["model_id"],
            "object": "model",
            "created": row["created"],
            "owned_by": row["publisher"],
            "category": row["category"],
            "context_length": row["context_length"],
            "pricing": row["pricing"],
        }
        for row in rows
    ]
    return HttpResponse(orjson.dumps({"object": "list", "data": data}), content_type="application/json")


@csrf_exempt
@require_POST
async def consume(request: HttpRequest, service_id: str) -> HttpResponse:
    """The native endpoint: `{prompt, max_tokens, temperature, metadata}` → `{request_id, response, usage, cost,
    latency_ms}` on the service's latest active version."""
    request_id = getattr(request, "request_id", "")
    try:
        body = _native_body(proxy.request_body(request))
        model_id = await database_sync_to_async(selectors.model_id_of_service)(service_id)
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            raise ValidationError("'prompt' must be a non-empty string.", fields={"prompt": ["Required string."]})
        metadata = body.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise ValidationError("'metadata' must be an object.", fields={"metadata": ["Object."]})
        chat = {"model": model_id, "messages": [{"role": "user", "content": prompt}]}
        for name in ("max_tokens", "temperature"):
            if body.get(name) is not None:
                chat[name] = body[name]
    except Exception as exc:
        return proxy.failure_response(exc, request_id)
    return await proxy.handle(request, "chat", native=True, body_override=chat)


def _native_body(raw: bytes) -> dict[str, object]:
    try:
        body = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise ValidationError("The request body is not valid JSON.", fields={"body": ["Invalid JSON."]}) from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.", fields={"body": ["Not an object."]})
    return body
