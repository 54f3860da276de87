"""A lean ASGI edge for a hot path: (method, path) routed to async handlers that take an `EdgeRequest` and answer a
`Reply`, with what the middleware gives every other request — the request id (taken from the client when well formed,
echoed), the bound log context and one `request_finished` line, the request metrics, the security headers — and none
of Django's request or response objects. Serve a URL prefix with it (`llm_infra_django.asgi.route_by_prefix`);
everything else stays Django.

A streamed reply is sent as it is produced, and stopped when the client disconnects (its iterator closed, so its own
clean-up runs); a handler that raises gets the error renderer's answer, never a traceback."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from django.conf import settings

from llm_infra_django.body import too_large
from llm_infra_django.conf import infra_settings
from llm_infra_django.errors import AppError, InternalError, NotFoundError, to_app_error
from llm_infra_django.logging import log_response
from llm_infra_django.metrics import observe_request
from llm_infra_django.middleware import security_headers

logger = structlog.get_logger("llm_infra.edge")
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class Reply:
    """A framework-free HTTP answer: status, headers, and a body — whole bytes, or a stream of chunks."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None


@dataclass(frozen=True)
class EdgeRequest:
    """What a handler gets of a request: read once, headers with lower-case names."""

    method: str
    path: str
    query_string: bytes
    headers: Mapping[str, str]
    body: bytes
    request_id: str
    client: str | None
    secure: bool


Handler = Callable[[EdgeRequest], Awaitable[Reply]]
ErrorRenderer = Callable[[AppError, str], Reply]


class MethodNotAllowedError(AppError):
    status_code = 405
    code = "method_not_allowed"
    default_message = "This method is not allowed here."


def _secure(scope: Mapping[str, Any], headers: Mapping[str, str]) -> bool:
    """As Django's `request.is_secure()`: the scheme, or the TLS proxy's header if `SECURE_PROXY_SSL_HEADER` is set."""
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header:
        name, value = proxy_header
        sent = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower())
        if sent is not None:
            return sent.split(",", 1)[0].strip() == value
    return scope.get("scheme") == "https"


class Edge:
    """An ASGI application serving `routes` ({path: {method: handler}}); `errors` renders every refusal (unknown
    path, method, a body over `max_body_bytes()`, a failure) in the edge's own error shape."""

    def __init__(
        self,
        routes: Mapping[str, Mapping[str, Handler]],
        *,
        errors: ErrorRenderer,
        max_body_bytes: Callable[[], int],
        route_names: Mapping[str, str] | None = None,
        too_large_code: str | None = None,
    ) -> None:
        self.routes = {path: dict(methods) for path, methods in routes.items()}
        self.errors = errors
        self.max_body_bytes = max_body_bytes
        self.too_large_code = too_large_code
        # The route template each path is measured and logged under (default: the path without its leading slash).
        self.route_names = dict(route_names or {path: path.lstrip("/") for path in routes})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        started = time.perf_counter()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        supplied = headers.get(infra_settings.REQUEST_ID_HEADER.lower(), "")
        request_id = supplied if _REQUEST_ID_RE.match(supplied) else os.urandom(16).hex()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        method, path = scope["method"], scope["path"]
        route = self.route_names.get(path)
        secure = _secure(scope, headers)
        status = 500
        try:
            reply = await self._reply(scope, receive, headers, request_id, secure)
            status = reply.status
            await self._send(reply, send, receive, request_id, secure)
        finally:
            context = structlog.contextvars.get_contextvars()
            extra = {name: context[name] for name in ("tenant", "user") if context.get(name)}
            elapsed = time.perf_counter() - started
            log_response(method=method, path=path, route=route, status=status, duration_ms=elapsed * 1000, **extra)
            observe_request(method, route, status, elapsed)
            structlog.contextvars.clear_contextvars()

    async def _reply(self, scope: Any, receive: Any, headers: dict[str, str], request_id: str, secure: bool) -> Reply:
        methods = self.routes.get(scope["path"])
        if methods is None:
            return self.errors(NotFoundError(message=f"No endpoint at {scope['path']}."), request_id)
        handler = methods.get(scope["method"])
        if handler is None:
            allowed = ", ".join(sorted(methods))
            reply = self.errors(MethodNotAllowedError(f"Use {allowed} here."), request_id)
            reply.headers["Allow"] = allowed
            return reply
        try:
            body = await self._body(receive, headers)
        except AppError as refused:
            return self.errors(refused, request_id)
        client = scope.get("client")
        request = EdgeRequest(
            method=scope["method"],
            path=scope["path"],
            query_string=scope.get("query_string", b""),
            headers=headers,
            body=body,
            request_id=request_id,
            client=client[0] if client else None,
            secure=secure,
        )
        try:
            return await handler(request)
        except Exception as exc:
            known = to_app_error(exc)
            if known is None:
                logger.exception("edge_handler_failed", exc_type=type(exc).__name__)
            return self.errors(known or InternalError(), request_id)

    async def _body(self, receive: Any, headers: Mapping[str, str]) -> bytes:
        """The body, refused (413) from its Content-Length or as soon as it grows past the limit."""
        limit = self.max_body_bytes()
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large(limit, int(declared), code=self.too_large_code)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large(limit, None, code=self.too_large_code)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _send(self, reply: Reply, send: Any, receive: Any, request_id: str, secure: bool) -> None:
        headers = [(b"content-type", reply.content_type.encode("latin-1"))]
        if reply.stream is None:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        extra = {infra_settings.REQUEST_ID_HEADER: request_id, **reply.headers}
        common, hsts = security_headers()
        for name, value in common:
            extra.setdefault(name, value)
        if hsts is not None and secure:
            extra.setdefault("Strict-Transport-Security", hsts)
        headers.extend((name.lower().encode("latin-1"), str(value).encode("latin-1")) for name, value in extra.items())
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if reply.stream is None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        await _stream(reply.stream, send, receive)


async def _stream(chunks: AsyncIterator[bytes], send: Any, receive: Any) -> None:
    """Send the chunks as they come; a client that disconnects stops them (the iterator is closed either way)."""

    async def relay() -> None:
        async for chunk in chunks:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    sending = asyncio.ensure_future(relay())
    watching = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait((sending, watching), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sending, watching):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()
        if sending.done() and not sending.cancelled() and sending.exception() is not None:
            logger.warning("edge_stream_failed", error=type(sending.exception()).__name__)
