"""The last stage of a proxied call: its answer in OpenAI's shapes, as a `Reply` that belongs to no web framework
(the ASGI edge, edge.py, sends it as it is; Django views wrap it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import orjson
import structlog

from apps.consumption.admission import Ticket
from apps.consumption.claims import BilledUsage
from apps.consumption.upstream import UpstreamStatusError
from apps.publishing.selectors import Route
from llm_infra_django.edge import Reply
from llm_infra_django.errors import (
    AppError,
    ExternalServiceError,
    InternalError,
    RateLimitError,
    openai_error_body,
    to_app_error,
)

logger = structlog.get_logger(__name__)
JSON = "application/json"
EVENT_STREAM = "text/event-stream"
# Which offer served the call: `<publisher>/<service>@<version>`.
PROVIDER_HEADER = "X-Marketplace-Provider"


def json_reply(payload: Any, request_id: str, *, status: int = 200, **headers: str) -> Reply:
    return Reply(status, orjson.dumps(payload), headers={"X-Request-ID": request_id, **headers})


def error_reply(error: AppError, request_id: str) -> Reply:
    """OpenAI's error shape (with `Retry-After` where the error has one)."""
    return json_reply(openai_error_body(error), request_id, status=error.status_code, **error.headers())


def failure_reply(exc: Exception, request_id: str) -> Reply:
    """OpenAI's error shape for any failure: a known one keeps its meaning (the database away: 503); anything else
    is logged and answered as a 500 without internals."""
    error = to_app_error(exc)
    if error is None:
        logger.exception("proxy_failed", request_id=request_id, exc_type=type(exc).__name__)
        error = InternalError()
    return error_reply(error, request_id)


def limit_headers(headers: dict[str, str], ticket: Ticket | None) -> dict[str, str]:
    """The rate-limit headers of an admitted call (keys with an rpm or tpm limit), added to `headers`."""
    if ticket is None:
        return headers
    if ticket.rpm_limit is not None:
        headers["X-RateLimit-Limit-Requests"] = str(ticket.rpm_limit)
        headers["X-RateLimit-Remaining-Requests"] = str(max(ticket.rpm_remaining or 0, 0))
        headers["X-RateLimit-Reset-Requests"] = "60s"
    if ticket.tpm_limit is not None:
        headers["X-RateLimit-Limit-Tokens"] = str(ticket.tpm_limit)
        headers["X-RateLimit-Remaining-Tokens"] = str(max(ticket.tpm_remaining or 0, 0))
        headers["X-RateLimit-Reset-Tokens"] = f"{max(ticket.tpm_reset_ms, 0) / 1000:.3f}s"
    return headers


def upstream_error(exc: UpstreamStatusError, route: Route) -> AppError:
    """The client-facing error for an upstream error status: its 4xx passed on, its 5xx as 502."""
    if exc.status_code < 500:
        message = "The upstream refused the request."
        try:
            detail = orjson.loads(exc.body)
            message = (detail.get("error") or {}).get("message") or message
        except (orjson.JSONDecodeError, AttributeError):
            pass
        if exc.status_code == 429:
            return RateLimitError(f"The upstream is rate limiting: {message}", retry_after=1)
        return AppError(message, status_code=exc.status_code, code="upstream_rejected")
    return ExternalServiceError(f"The upstream of {route.model_id} failed ({exc.status_code}).", service=route.model_id)


def stream_error_event(error: AppError) -> bytes:
    """The event that ends a stream that failed after its first byte (nothing can be retried then)."""
    return b"data: " + orjson.dumps(openai_error_body(error)) + b"\n\n"


def billed_usage(usage: BilledUsage, cost: Decimal) -> dict[str, Any]:
    """The `usage` object the client gets: the billed counts (not the provider's claim) and their cost."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": float(cost),
    }


def text_of(body: dict[str, Any]) -> str:
    """The text an OpenAI answer (or a streamed chunk of one) delivers: its choices' content or text."""
    parts = []
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or choice.get("delta") or {}
            parts.append(str(message.get("content") or "") if isinstance(message, dict) else "")
            parts.append(str(choice.get("text") or ""))
    return "".join(parts)


def completion_reply(
    body: dict[str, Any],
    usage: BilledUsage,
    cost: Decimal,
    *,
    request_id: str,
    ticket: Ticket | None,
    provider: str,
    native_latency_ms: float | None = None,
) -> Reply:
    """A non-streamed answer: the upstream's body with the billed usage and its cost and the offer that served it
    (`provider`, `<publisher>/<service>@<version>`, also in `X-Marketplace-Provider`), or, with
    `native_latency_ms` (the native consume endpoint), `{request_id, response, usage, cost, latency_ms, provider}`."""
    if native_latency_ms is not None:
        payload: dict[str, Any] = {
            "request_id": request_id,
            "response": text_of(body),
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "estimated": usage.estimated,
            },
            "cost": str(cost),
            "latency_ms": native_latency_ms,
            "provider": provider,
        }
    else:
        reported = body.get("usage")
        body["usage"] = {**(reported if isinstance(reported, dict) else {}), **billed_usage(usage, cost)}
        body["provider"] = provider
        payload = body
    headers = {"X-Request-ID": request_id, "X-Marketplace-Cost": str(cost), PROVIDER_HEADER: provider}
    limit_headers(headers, ticket)
    return Reply(200, orjson.dumps(payload), headers=headers)


def stream_reply(events: AsyncIterator[bytes], *, request_id: str, ticket: Ticket | None, provider: str) -> Reply:
    """A streamed answer: server-sent events, never buffered by proxies on the way."""
    headers = {
        "X-Request-ID": request_id,
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
        PROVIDER_HEADER: provider,
    }
    limit_headers(headers, ticket)
    return Reply(200, content_type=EVENT_STREAM, headers=headers, stream=events)
