"""The OpenAI-compatible endpoints (`/v1/...`) and the native consume endpoint as Django views: each reads the
request and sends the `Reply` of the proxy's entrance (the ASGI edge, asgi.py, serves the same entrances without
Django's request and response objects)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, HttpResponseBase, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from apps.consumption import entrances, proxy
from apps.consumption.answers import Reply, error_reply
from apps.consumption.conf import consumption_settings
from llm_infra_django.body import read_body
from llm_infra_django.errors import AppError


def as_response(reply: Reply) -> HttpResponseBase:
    """A `Reply` as Django's response (streamed when it streams)."""
    response: HttpResponseBase
    if reply.stream is not None:
        response = StreamingHttpResponse(reply.stream, status=reply.status, content_type=reply.content_type)
    else:
        response = HttpResponse(reply.body, status=reply.status, content_type=reply.content_type)
    for name, value in reply.headers.items():
        response[name] = value
    return response


def _request_id(request: HttpRequest) -> str:
    return getattr(request, "request_id", "") or ""


async def _call(request: HttpRequest, kind: str) -> HttpResponseBase:
    request_id = _request_id(request)
    try:
        body = read_body(request, consumption_settings.MAX_BODY_BYTES, code="request_too_large")
    except AppError as error:
        return as_response(error_reply(error, request_id))
    authorization = request.headers.get("Authorization")
    return as_response(await proxy.handle(kind, authorization=authorization, body=body, request_id=request_id))


@csrf_exempt
@require_POST
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    return await _call(request, "chat")


@csrf_exempt
@require_POST
async def completions(request: HttpRequest) -> HttpResponseBase:
    return await _call(request, "completions")


@csrf_exempt
@require_POST
async def embeddings(request: HttpRequest) -> HttpResponseBase:
    return await _call(request, "embeddings")


@require_GET
async def models(request: HttpRequest) -> HttpResponseBase:
    reply = await entrances.list_models(
        authorization=request.headers.get("Authorization"), request_id=_request_id(request)
    )
    return as_response(reply)


@csrf_exempt
@require_POST
async def consume(request: HttpRequest, service_id: str) -> HttpResponseBase:
    request_id = _request_id(request)
    try:
        body = read_body(request, consumption_settings.MAX_BODY_BYTES, code="request_too_large")
    except AppError as error:
        return as_response(error_reply(error, request_id))
    authorization = request.headers.get("Authorization")
    reply = await entrances.consume(str(service_id), authorization=authorization, body=body, request_id=request_id)
    return as_response(reply)
