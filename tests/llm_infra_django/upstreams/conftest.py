"""Fixtures for the upstream client tests: a real local HTTP server that answers, fails, hangs or sends garbage."""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings

from llm_infra_django.resilience import breaker
from tests.llm_infra_django.resilience.support import log_events, span_exporter

__all__ = ["Answer", "FakeUpstream", "Received", "log_events", "span_exporter"]

UPSTREAMS = ("registry", "shield", "policy_engine")


@dataclasses.dataclass(frozen=True)
class Received:
    """A request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any


@dataclasses.dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"

    @classmethod
    def of(cls, status: int, data: Any = None) -> Answer:
        return cls(status, b"" if data is None else json.dumps(data).encode())


class QuietServer(ThreadingHTTPServer):
    """Handler threads are daemons, and a client that gave up (closed socket) is not an error worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


class FakeUpstream:
    """A threaded HTTP server on 127.0.0.1 and a free port; `mode` picks how it answers.

    "ok": `responder(received)` decides; "error": 500; "hang": no answer until teardown; "garbage": 200 HTML;
    "wrong_shape": 200 with a JSON object of the wrong shape.
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.responder: Callable[[Received], Answer] = lambda received: Answer.of(200, {})
        self.received: list[Received] = []
        self.release = threading.Event()
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                upstream.handle(self)

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                """Keep the test output quiet."""

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        received = Received(
            method=handler.command,
            path=handler.path,
            headers={name.lower(): value for name, value in handler.headers.items()},
            json=json.loads(raw) if raw else None,
        )
        self.received.append(received)
        answer = self.answer(received)
        if answer is None:
            return
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)

    def answer(self, received: Received) -> Answer | None:
        if self.mode == "error":
            return Answer.of(500, {"error": "internal"})
        if self.mode == "hang":
            self.release.wait(10)
            return None
        if self.mode == "garbage":
            return Answer(200, b"<html><body>Bad gateway, maybe</body></html>", "text/html")
        if self.mode == "wrong_shape":
            return Answer.of(200, {"unexpected": ["shape"]})
        return self.responder(received)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def closed_upstream_breakers() -> Iterator[None]:
    """Each test starts and ends with the `upstream:*` breakers of this process closed."""
    for name in UPSTREAMS:
        breaker(f"upstream:{name}").reset()
    yield
    for name in UPSTREAMS:
        breaker(f"upstream:{name}").reset()


def infra_settings_for(upstream: str, url: str | None, *, fail_open: bool, **options: Any) -> dict[str, Any]:
    """`LLM_INFRA` pointing `upstream` at `url`, with quick retries.

    The timeout is generous (a loaded CI machine must not turn a good answer into a timeout); tests of a hanging
    upstream pass a short `TIMEOUT_MS`.
    """
    return {
        "TRACING": {"ENABLED": False},
        "RETRY": {"MAX_ATTEMPTS": 3, "BASE_DELAY_MS": 1, "MAX_DELAY_MS": 5},
        "UPSTREAMS": {upstream: {"URL": url, "TIMEOUT_MS": 5000, "FAIL_OPEN": fail_open, **options}},
    }


@pytest.fixture
def configure() -> Iterator[Callable[..., None]]:
    """`configure("shield", url, fail_open=True)`: point an upstream somewhere for the rest of the test."""
    overrides: list[override_settings] = []

    def apply(upstream: str, url: str | None, *, fail_open: bool, **options: Any) -> None:
        override = override_settings(LLM_INFRA=infra_settings_for(upstream, url, fail_open=fail_open, **options))
        override.enable()
        overrides.append(override)

    yield apply
    for override in reversed(overrides):
        override.disable()
