"""The upstream stage: the built-in echo provider in-process, OpenAI-compatible servers over one pooled aiohttp
`ClientSession` per event loop (SSRF-guarded: every new connection goes only to a checked public address), with the
SLA timeout, the service version's circuit breaker, and a retry only when the request never reached the upstream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from apps.consumption import echo
from apps.consumption.conf import consumption_settings
from apps.publishing.conf import publishing_settings
from apps.publishing.crypto import decrypt_secret
from apps.publishing.network import GuardedResolver, PrivateAddressError, public_addresses_async
from apps.publishing.selectors import Route
from llm_infra_django.errors import ExternalServiceError, UpstreamTimeoutError
from llm_infra_django.resilience.breaker import breaker
from llm_infra_django.tracing import inject_trace_headers

PATHS = {"chat": "/chat/completions", "completions": "/completions", "embeddings": "/embeddings"}
# What a failed exchange with an upstream raises: the transport's errors and its timeouts.
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError)

_sessions: dict[tuple[int, bool], aiohttp.ClientSession] = {}
_secrets: dict[str, tuple[str, str]] = {}


class UpstreamStatusError(Exception):
    """The upstream answered with an error status (5xx count as breaker failures; see `status_code`)."""

    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.body = body
        super().__init__(f"upstream answered {status_code}")


def session() -> aiohttp.ClientSession:
    """The pooled session of the running event loop: SSRF-guarded (new connections go only to checked public
    addresses) unless `MARKETPLACE_PUBLISHING["ALLOW_PRIVATE_ENDPOINTS"]` is on."""
    guarded = not publishing_settings.ALLOW_PRIVATE_ENDPOINTS
    key = (id(asyncio.get_running_loop()), guarded)
    current = _sessions.get(key)
    if current is None or current.closed:
        connector = aiohttp.TCPConnector(
            limit=1000, keepalive_timeout=30, resolver=GuardedResolver() if guarded else None, ttl_dns_cache=30
        )
        current = aiohttp.ClientSession(
            connector=connector,
            # No proxies or .netrc from the environment: an upstream is called directly (and aiohttp would read
            # them on a thread for every request).
            trust_env=False,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            raise_for_status=False,
        )
        _sessions[key] = current
    return current


async def _guard_address(route: Route) -> None:
    """The guard for an IP-literal endpoint (aiohttp resolves only names through its resolver): refused unless
    public. Checked answers are cached, so a call pays one dictionary lookup."""
    if publishing_settings.ALLOW_PRIVATE_ENDPOINTS:
        return
    try:
        await public_addresses_async((urlsplit(route.endpoint_url).hostname or "").lower())
    except PrivateAddressError as exc:
        raise aiohttp.ClientConnectionError(str(exc)) from None


def _secret(route: Route) -> str:
    cached = _secrets.get(route.version_id)
    if cached is None or cached[0] != route.upstream_secret_encrypted:
        cached = (route.upstream_secret_encrypted, decrypt_secret(route.upstream_secret_encrypted))
        _secrets[route.version_id] = cached
    return cached[1]


def headers(route: Route, request_id: str) -> dict[str, str]:
    result = {"Content-Type": "application/json", "X-Request-ID": request_id}
    if route.auth_kind != "none":
        secret = _secret(route)
        result["Authorization"] = f"Bearer {secret}"
        if route.auth_kind == "api_key":
            result["api-key"] = secret
    return inject_trace_headers(result)


def upstream_body(route: Route, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
    forwarded = {**body, "model": route.upstream_model or body.get("model")}
    if stream:
        forwarded["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    return forwarded


def circuit(route: Route) -> Any:
    return breaker(f"upstream:{route.version_id}")


def _timeout(route: Route) -> aiohttp.ClientTimeout:
    """The SLA timeout for connecting and for each read (as long as the upstream keeps answering, a call goes on)."""
    seconds = route.sla_timeout_ms / 1000
    return aiohttp.ClientTimeout(total=None, connect=seconds, sock_read=seconds)


@dataclass
class Answer:
    status_code: int
    body: dict[str, Any]


async def _exchange(route: Route, kind: str, body: dict[str, Any], request_id: str, *, stream: bool) -> Any:
    """POST the call upstream; a connection that could not be made is tried again (nothing reached the upstream)."""
    await _guard_address(route)
    url = route.endpoint_url.rstrip("/") + PATHS[kind]
    payload = orjson.dumps(upstream_body(route, body, stream=stream))
    attempts = 1 + max(0, int(consumption_settings.CONNECT_RETRIES))
    for attempt in range(attempts):
        try:
            return await session().post(url, data=payload, headers=headers(route, request_id), timeout=_timeout(route))
        except aiohttp.ClientConnectorError:
            if attempt + 1 >= attempts:
                raise
    raise AssertionError("unreachable")


# Service versions whose circuit was seen closed in the last second (per process): their successful calls skip the
# breaker's two Redis round trips. Failures always go through the breaker, and at least one call per second per
# process takes the full path (so successes still reset the failure streak and an opened circuit is seen within 1 s).
FAST_PATH_SECONDS = 1.0
_closed_at: dict[str, float] = {}


async def _answer(route: Route, response: aiohttp.ClientResponse) -> Answer:
    """The upstream's answer, or the error it stands for: an error status, or a body that is not a JSON object."""
    async with response:
        content = await response.read()
    if response.status >= 400:
        raise UpstreamStatusError(response.status, content)
    try:
        parsed = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ExternalServiceError("The upstream answered something that is not JSON.", service=route.model_id) from exc
    if not isinstance(parsed, dict):
        raise ExternalServiceError("The upstream answered an unexpected shape.", service=route.model_id)
    return Answer(response.status, parsed)


async def _guarded_call(route: Route, kind: str, body: dict[str, Any], request_id: str) -> Answer:
    """The exchange and its answer through the version's breaker: transport errors, timeouts, 5xx and unreadable
    answers count as its failures; a 4xx proves the upstream alive."""
    if time.monotonic() - _closed_at.get(route.version_id, -FAST_PATH_SECONDS) < FAST_PATH_SECONDS:
        try:
            return await _answer(route, await _exchange(route, kind, body, request_id, stream=False))
        except UpstreamStatusError as exc:
            if exc.status_code < 500:
                raise
            failure: Exception = exc
        except (*TRANSPORT_ERRORS, ExternalServiceError) as exc:
            failure = exc
        _closed_at.pop(route.version_id, None)
        async with circuit(route).guard():  # record the failure (or learn that the circuit opened meanwhile)
            raise failure from None
    async with circuit(route).guard() as guard:
        answer = await _answer(route, await _exchange(route, kind, body, request_id, stream=False))
    if not guard.probe:  # a half-open circuit counts every call until it closes: no fast path before that
        _closed_at[route.version_id] = time.monotonic()
    return answer


def transport_failure(route: Route, exc: BaseException) -> Exception:
    """The client-facing error for a transport failure: a timeout is a 504, anything else a 502."""
    if isinstance(exc, asyncio.TimeoutError):
        return UpstreamTimeoutError(f"The upstream of {route.model_id} did not answer in time.", service=route.model_id)
    return ExternalServiceError(f"The upstream of {route.model_id} is unreachable.", service=route.model_id)


async def call(route: Route, kind: str, body: dict[str, Any], request_id: str) -> Answer:
    """A non-streamed call; upstream errors raise `UpstreamStatusError`, transport problems and unreadable answers
    502/504 errors."""
    if route.protocol == "echo":
        return Answer(200, _echo(route, kind, body))
    try:
        return await _guarded_call(route, kind, body, request_id)
    except TRANSPORT_ERRORS as exc:
        raise transport_failure(route, exc) from exc


def _echo(route: Route, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    model = body.get("model") or route.model_id
    if kind == "chat":
        return echo.chat_completion(body, model=model, context_length=route.context_length)
    if kind == "completions":
        return echo.completion(body, model=model, context_length=route.context_length)
    return echo.embeddings(body, model=model)


class Stream:
    """An open upstream stream: SSE event bytes in `events()`; `close()` cancels the upstream request."""

    def __init__(self, response: aiohttp.ClientResponse | None, echo_chunks: Any = None, guard: Any = None) -> None:
        self._response = response
        self._echo = echo_chunks
        self._guard = guard
        self.closed = False

    async def events(self) -> AsyncIterator[bytes]:
        """Whole SSE events (`data: ...\\n\\n`), as the upstream sent them."""
        if self._echo is not None:
            for chunk in self._echo:
                yield echo.sse_event(chunk)
                await asyncio.sleep(0)
            yield echo.SSE_DONE
            return
        assert self._response is not None
        buffer = b""
        async for piece in self._response.content.iter_any():
            buffer += piece
            while b"\n\n" in buffer:
                event, buffer = buffer.split(b"\n\n", 1)
                if event.strip():
                    yield event + b"\n\n"
        if buffer.strip():
            yield buffer + b"\n\n"

    async def close(self, exc: BaseException | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if self._response is not None:
            self._response.close()
        if self._guard is not None:
            await self._guard.__aexit__(type(exc) if exc else None, exc, None)


async def open_stream(route: Route, kind: str, body: dict[str, Any], request_id: str) -> Stream:
    """Start a streamed call; returns once the upstream's headers arrived with a 2xx (errors raise as in `call`)."""
    if route.protocol == "echo":
        model = body.get("model") or route.model_id
        # Like every upstream, asked for its usage chunk (bills exactly; the proxy drops it unless the client asked).
        with_usage = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
        chunks = (echo.stream_chat_completion if kind == "chat" else echo.stream_completion)(
            with_usage, model=model, context_length=route.context_length
        )
        return Stream(None, echo_chunks=chunks)
    guard = circuit(route).guard()
    await guard.__aenter__()
    try:
        response = await _exchange(route, kind, body, request_id, stream=True)
    except TRANSPORT_ERRORS as exc:
        await guard.__aexit__(type(exc), exc, None)
        raise transport_failure(route, exc) from exc
    except BaseException as exc:
        await guard.__aexit__(type(exc), exc, None)
        raise
    if response.status >= 400:
        async with response:
            content = await response.read()
        error = UpstreamStatusError(response.status, content)
        await guard.__aexit__(UpstreamStatusError, error if response.status >= 500 else None, None)
        raise error
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        # Not the event stream asked for (an error page, garbage): a failure of the upstream, nothing to relay.
        response.close()
        failure = ExternalServiceError(
            f"The upstream of {route.model_id} did not answer with an event stream.", service=route.model_id
        )
        await guard.__aexit__(ExternalServiceError, failure, None)
        raise failure
    return Stream(response, guard=guard)
