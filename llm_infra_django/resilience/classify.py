"""Which failures are transient: the status an exception carries, `Retry-After`, and the retry/breaker predicates."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import httpx

from llm_infra_django import errors

RETRYABLE_STATUSES = frozenset({408, 429})

# Our own errors that stand for an upstream's answer (or silence); the others (500 bugs, 4xx) are final.
_UPSTREAM_APP_ERRORS = (errors.ExternalServiceError, errors.ServiceUnavailableError, errors.UpstreamTimeoutError)


# A failure to reach or keep talking to a server, as each HTTP client says it.
CONNECTION_ERRORS = (
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
    ConnectionError,
)


def is_connection_error(exc: BaseException) -> bool:
    """True for a failure to reach or keep talking to a server: refused, reset, DNS, dropped mid-answer (httpx,
    aiohttp, or the socket's own error)."""
    return isinstance(exc, CONNECTION_ERRORS)


def is_timeout(exc: BaseException) -> bool:
    """True for a timeout: httpx's, asyncio's/the builtin one, or our 504 `UpstreamTimeoutError`."""
    return isinstance(exc, (httpx.TimeoutException, TimeoutError, errors.UpstreamTimeoutError))


def status_of(exc: BaseException) -> int | None:
    """The HTTP status an exception carries, or None.

    Understood: `httpx.HTTPStatusError`, any exception with a `response.status_code` (requests-style) or an int
    `status_code` attribute, and among our `AppError`s only those standing for an upstream (502/503/504) or a
    rate limit (429). A `CircuitOpenError` carries none: it is our own refusal, not the upstream's answer.
    """
    if isinstance(exc, errors.CircuitOpenError):
        return None
    if isinstance(exc, errors.AppError):
        return exc.status_code if isinstance(exc, (*_UPSTREAM_APP_ERRORS, errors.RateLimitError)) else None
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def is_retryable_status(status: int) -> bool:
    """408, 429 and every 5xx are worth another attempt; other statuses are final answers."""
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def is_retryable(exc: BaseException) -> bool:
    """The default retry predicate: connection errors, timeouts, and HTTP 408/429/5xx — nothing else."""
    if isinstance(exc, errors.CircuitOpenError):
        return False
    if is_connection_error(exc) or is_timeout(exc):
        return True
    status = status_of(exc)
    return status is not None and is_retryable_status(status)


def is_breaker_failure(exc: BaseException) -> bool:
    """The default circuit-breaker predicate: connection errors, timeouts and 5xx (a 4xx proves the upstream lives)."""
    if isinstance(exc, errors.CircuitOpenError):
        return False
    if is_connection_error(exc) or is_timeout(exc):
        return True
    status = status_of(exc)
    return status is not None and 500 <= status <= 599


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or an HTTP date), or None when absent or invalid."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def retry_after_of(exc: BaseException, *, now: Callable[[], float] = time.time) -> float | None:
    """The wait an exception asks for: its response's `Retry-After` header, else a numeric `retry_after` attribute."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if isinstance(headers, (Mapping, httpx.Headers)):
        parsed = parse_retry_after(_header(headers, "Retry-After"), now=now)
        if parsed is not None:
            return parsed
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(retry_after, (int, float)) and not isinstance(retry_after, bool):
        return max(0.0, float(retry_after))
    return None


def _header(headers: Mapping[str, Any] | httpx.Headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == name.lower()), None)
    return str(value) if value is not None else None
