"""Build the error envelope response for an exception, for plain Django views and the error handlers."""

from __future__ import annotations

from typing import Any

import structlog
from django.http import HttpRequest, JsonResponse

from llm_infra_django.errors import AppError, InternalError, envelope, openai_error_body, to_app_error
from llm_infra_django.logging import get_request_id

logger = structlog.get_logger("llm_infra.errors")


def wants_html(request: HttpRequest) -> bool:
    """Whether the client is a browser asking for a page rather than an API client asking for JSON."""
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


def request_id_of(request: HttpRequest | None) -> str | None:
    return getattr(request, "request_id", None) or get_request_id()


def envelope_response(error: AppError, request: HttpRequest | None = None) -> JsonResponse:
    """A JSON response carrying `error` in the envelope, with its status and headers."""
    response = JsonResponse(envelope(error, request_id_of(request)), status=error.status_code)
    for name, value in error.headers().items():
        response[name] = value
    return response


def openai_error_response(error: AppError, *, param: str | None = None) -> JsonResponse:
    """A JSON response in OpenAI's error shape, for the `/v1/` endpoints."""
    response = JsonResponse(openai_error_body(error, param=param), status=error.status_code)
    for name, value in error.headers().items():
        response[name] = value
    return response


def error_response(exc: BaseException, request: HttpRequest | None = None) -> JsonResponse | None:
    """The envelope for a known exception, or None for an unexpected one."""
    error = to_app_error(exc)
    if error is None:
        return None
    if error.status_code >= 500:
        logger.error("request_failed", code=error.code, error=error.message, exc_info=exc)
    return envelope_response(error, request)


def unhandled_error(exc: BaseException, request: HttpRequest | None = None, **log_fields: Any) -> JsonResponse:
    """A 500 envelope for a bug: the stack goes to the log, never to the client."""
    logger.error("unhandled_exception", exc_type=type(exc).__name__, exc_info=exc, **log_fields)
    return envelope_response(InternalError(), request)
