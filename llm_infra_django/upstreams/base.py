"""Base of the upstream clients: httpx, timeouts, retry, breaker, trace context, logs, metrics, fail-open/closed."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

import httpx
from opentelemetry.trace import Span, Status, StatusCode

from llm_infra_django import errors
from llm_infra_django.conf import infra_settings
from llm_infra_django.logging import log_external_call
from llm_infra_django.metrics import UPSTREAM_LATENCY
from llm_infra_django.resilience.breaker import CircuitBreaker, breaker
from llm_infra_django.resilience.classify import is_retryable_status
from llm_infra_django.resilience.retry import RetryPolicy, aretry_call, retry_call
from llm_infra_django.tracing import http_client_span, inject_trace_headers

__all__ = [
    "SEVERITIES",
    "InvalidResponseError",
    "UpstreamClient",
    "UpstreamRequest",
    "UpstreamResult",
    "expect_status",
    "invalid",
    "json_object",
    "object_field",
    "object_list",
    "optional_text",
    "required_text",
]

R = TypeVar("R")

SEVERITIES = frozenset({"low", "medium", "high", "critical"})
USER_AGENT = "llm-infra-django"
_FAILURES = (httpx.HTTPError, errors.AppError)


class InvalidResponseError(errors.ExternalServiceError):
    """The upstream answered 2xx, but not what its contract says (not JSON, wrong shape, unknown values)."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(
            f"Upstream service {service!r} sent an invalid response: {reason}.",
            service=service,
            details={"reason": reason},
        )


@dataclasses.dataclass(frozen=True, kw_only=True)
class UpstreamResult:
    """What every client result says about where it came from.

    `evaluated`: the upstream was consulted and this is its answer. `degraded`: the upstream failed and this is
    the fail-open stand-in (`error` says why). Neither: the upstream is not configured — apply built-in rules.
    """

    evaluated: bool = True
    degraded: bool = False
    error: str | None = None


@dataclasses.dataclass(frozen=True)
class UpstreamRequest(Generic[R]):
    """One operation: what to send, how to read the answer, and the results standing in when there is none."""

    operation: str
    method: str
    path: str
    parse: Callable[[httpx.Response], R]
    fail_open: Callable[[str], R]
    not_configured: Callable[[], R]
    json: Any = None


class UpstreamClient:
    """Shared machinery of the Registry, Shield and Policy Engine clients (one instance per process is enough).

    Each client names its entry of `LLM_INFRA["UPSTREAMS"]` (read at every call): `URL` (None = the upstream is not
    used), `TIMEOUT_MS` (httpx timeout of each phase of each attempt: connect, write, every read, pool wait),
    `FAIL_OPEN` and `API_KEY` (sent as `Authorization: Bearer …`). A call is retried per `LLM_INFRA["RETRY"]` (408,
    429, 5xx, connection errors, timeouts) through the breaker `upstream:<name>`. When it still fails — an error, a
    timeout, an open circuit, an unexpected status or an answer that breaks the contract — a fail-open upstream
    returns the client's permissive result flagged `degraded=True`; a fail-closed one raises `UpstreamTimeoutError`
    (504), `ServiceUnavailableError` (503: unreachable, or `CircuitOpenError`) or `ExternalServiceError` (502:
    another status, or `InvalidResponseError` for an answer off the contract).

    The sync path pools connections in one `httpx.Client`; the async path in one `httpx.AsyncClient` per event loop.
    """

    upstream: ClassVar[str]

    def __init__(self, *, retry_policy: RetryPolicy | None = None) -> None:
        self._retry_policy = retry_policy
        self._lock = threading.Lock()
        self._client: httpx.Client | None = None
        self._async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def options(self) -> Mapping[str, Any]:
        """This upstream's entry of `LLM_INFRA["UPSTREAMS"]`, as it is now."""
        return infra_settings.UPSTREAMS.get(self.upstream) or {}

    def is_configured(self) -> bool:
        """False when no URL is set: the upstream is not used and callers apply their built-in rules."""
        return bool(self.options().get("URL"))

    def fails_open(self) -> bool:
        """Whether a failed call yields the permissive result (True) or raises (False)."""
        return bool(self.options().get("FAIL_OPEN"))

    def breaker(self) -> CircuitBreaker:
        """The circuit breaker `upstream:<name>`, shared by every process when Redis is configured."""
        return breaker(f"upstream:{self.upstream}")

    def close(self) -> None:
        """Close the pooled sync connections."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the pooled connections of the running event loop."""
        client = self._async_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    # --- the call -------------------------------------------------------------------------------------------

    def _call(self, request: UpstreamRequest[R]) -> R:
        if not self.is_configured():
            return request.not_configured()
        url, timeout, circuit = self._url(request.path), self._timeout(), self.breaker()
        started = time.monotonic()
        try:
            response = retry_call(
                lambda: circuit.call(self._send, request, url, timeout),
                policy=self._policy(),
                service=self.upstream,
                operation=request.operation,
            )
            result = request.parse(response)
        except _FAILURES as exc:
            return self._failed(request, exc, started)
        self._observe(request.operation, "success", started, status=response.status_code)
        return result

    async def _acall(self, request: UpstreamRequest[R]) -> R:
        if not self.is_configured():
            return request.not_configured()
        url, timeout, circuit = self._url(request.path), self._timeout(), self.breaker()
        started = time.monotonic()
        try:
            response = await aretry_call(
                lambda: circuit.acall(self._asend, request, url, timeout),
                policy=self._policy(),
                service=self.upstream,
                operation=request.operation,
            )
            result = request.parse(response)
        except _FAILURES as exc:
            return self._failed(request, exc, started)
        self._observe(request.operation, "success", started, status=response.status_code)
        return result

    def _send(self, request: UpstreamRequest[Any], url: str, timeout: httpx.Timeout) -> httpx.Response:
        with http_client_span(self.upstream, request.method, url) as current:
            headers = inject_trace_headers(self._headers())
            response = self._sync_client().request(
                request.method, url, json=request.json, headers=headers, timeout=timeout
            )
            return self._checked(response, current)

    async def _asend(self, request: UpstreamRequest[Any], url: str, timeout: httpx.Timeout) -> httpx.Response:
        with http_client_span(self.upstream, request.method, url) as current:
            headers = inject_trace_headers(self._headers())
            response = await self._async_client().request(
                request.method, url, json=request.json, headers=headers, timeout=timeout
            )
            return self._checked(response, current)

    def _checked(self, response: httpx.Response, current: Span) -> httpx.Response:
        """Raise for statuses worth a retry (408, 429, 5xx); return any other answer for the client to read."""
        current.set_attribute("http.response.status_code", response.status_code)
        if response.status_code >= 500:
            current.set_status(Status(StatusCode.ERROR))
        if is_retryable_status(response.status_code):
            raise httpx.HTTPStatusError(
                f"{self.upstream} answered HTTP {response.status_code}", request=response.request, response=response
            )
        return response

    def _failed(self, request: UpstreamRequest[R], exc: BaseException, started: float) -> R:
        error, outcome = self._as_app_error(exc)
        fail_open = self.fails_open()
        self._observe(
            request.operation,
            outcome,
            started,
            status=error.details.get("status"),
            error=f"{type(exc).__name__}: {exc}",
            fail_open=fail_open,
        )
        if fail_open:
            return request.fail_open(error.message)
        raise error from exc

    def _as_app_error(self, exc: BaseException) -> tuple[errors.AppError, str]:
        """Our error for a failed call, and the outcome label of its log line and latency metric."""
        service = self.upstream
        if isinstance(exc, errors.CircuitOpenError):
            return exc, "circuit_open"
        if isinstance(exc, InvalidResponseError):
            return exc, "invalid_response"
        if isinstance(exc, (httpx.TimeoutException, errors.UpstreamTimeoutError)):
            return errors.UpstreamTimeoutError(service=service), "timeout"
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            message = f"Upstream service {service!r} answered HTTP {status}."
            return errors.ExternalServiceError(message, service=service, details={"status": status}), "http_error"
        if isinstance(exc, httpx.TransportError):
            message = f"Upstream service {service!r} is unreachable."
            return errors.ServiceUnavailableError(message, details={"service": service}), "unreachable"
        if isinstance(exc, errors.AppError):
            return exc, "http_error" if exc.details.get("status") else "error"
        return errors.ExternalServiceError(service=service), "error"

    def _observe(self, operation: str, outcome: str, started: float, **fields: Any) -> None:
        seconds = time.monotonic() - started
        UPSTREAM_LATENCY.labels(self.upstream, outcome).observe(seconds)
        log_external_call(
            service=self.upstream, operation=operation, duration_ms=seconds * 1000, outcome=outcome, **fields
        )

    # --- settings and connections ---------------------------------------------------------------------------

    def _policy(self) -> RetryPolicy:
        # TIMEOUT_MS bounds every attempt through httpx; no helper thread or task deadline on top of it.
        return self._retry_policy or RetryPolicy.from_settings(attempt_timeout=None)

    def _url(self, path: str) -> str:
        return str(self.options()["URL"]).rstrip("/") + path

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(float(self.options()["TIMEOUT_MS"]) / 1000)

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        api_key = self.options().get("API_KEY")
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        return headers

    def _sync_client(self) -> httpx.Client:
        client = self._client
        if client is None:
            with self._lock:
                client = self._client
                if client is None:
                    client = self._client = httpx.Client(follow_redirects=False)
        return client

    def _async_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(loop)
        if client is None:
            client = self._async_clients[loop] = httpx.AsyncClient(follow_redirects=False)
        return client


# --- reading answers: anything off-contract raises InvalidResponseError --------------------------------------


def expect_status(response: httpx.Response, service: str, ok: Collection[int]) -> None:
    """Raise `ExternalServiceError` (502, the status in its details) unless the answer's status is in `ok`."""
    status = response.status_code
    if status not in ok:
        raise errors.ExternalServiceError(
            f"Upstream service {service!r} answered HTTP {status}.", service=service, details={"status": status}
        )


def json_object(response: httpx.Response, service: str, *, ok: Collection[int] = (200,)) -> dict[str, Any]:
    """The JSON object of an answer whose status is in `ok`; another status or a non-object body is a failure."""
    expect_status(response, service, ok)
    try:
        body = response.json()
    except ValueError:
        invalid(service, "the body is not JSON")
    if not isinstance(body, dict):
        invalid(service, "the body is not a JSON object")
    return body


def invalid(service: str, reason: str) -> NoReturn:
    """Raise `InvalidResponseError` for `service`."""
    raise InvalidResponseError(service, reason)


def required_text(
    data: Mapping[str, Any], key: str, service: str, *, choices: Collection[str] | None = None, where: str = ""
) -> str:
    """`data[key]` as a non-empty string, one of `choices` when given."""
    value = data.get(key)
    if not isinstance(value, str) or not value:
        invalid(service, f"{where}{key!r} must be a non-empty string")
    if choices is not None and value not in choices:
        invalid(service, f"{where}{key!r} must be one of {', '.join(sorted(choices))}")
    return value


def optional_text(
    data: Mapping[str, Any], key: str, service: str, *, choices: Collection[str] | None = None, where: str = ""
) -> str | None:
    """`data[key]` as a string (possibly empty), or None when absent or null."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        invalid(service, f"{where}{key!r} must be a string")
    if choices is not None and value not in choices:
        invalid(service, f"{where}{key!r} must be one of {', '.join(sorted(choices))}")
    return value


def object_list(data: Mapping[str, Any], key: str, service: str) -> list[dict[str, Any]]:
    """`data[key]` as a list of JSON objects; absent or null = empty."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        invalid(service, f"{key!r} must be a list of objects")
    return value


def object_field(data: Mapping[str, Any], key: str, service: str) -> dict[str, Any]:
    """`data[key]` as a JSON object; absent or null = empty."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        invalid(service, f"{key!r} must be an object")
    return value
