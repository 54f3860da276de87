"""Fixtures of the publishing tests: a trusted publisher, a valid definition, a local OpenAI-compatible server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory


@pytest.fixture(autouse=True)
def _closed_upstream_circuits() -> Iterator[None]:
    """Upstream breakers are process-wide (and shared through Redis): every test starts with them closed."""
    from llm_infra_django.resilience.breaker import breaker

    for name in ("registry", "policy_engine", "shield"):
        breaker(f"upstream:{name}").reset()
    yield
    for name in ("registry", "policy_engine", "shield"):
        breaker(f"upstream:{name}").reset()


@pytest.fixture
def publisher_admin(db):
    return UserFactory(username="pub-admin")


@pytest.fixture
def publisher(publisher_admin):
    tenant = TenantFactory(slug="acme", trusted_publisher=True)
    MembershipFactory(tenant=tenant, user=publisher_admin, role=Role.OWNER)
    return tenant


@pytest.fixture
def staff(db):
    return UserFactory(username="platform-staff", is_staff=True, is_superuser=True)


def definition(**overrides: Any) -> dict[str, Any]:
    """A valid echo service definition (flattened service fields)."""
    values = {
        "name": "Echo Chat",
        "description": "A deterministic chat model for demos and tests.",
        "category": "chat",
        "tags": ["demo", "chat"],
        "protocol": "echo",
        "upstream_model": "echo-1",
        "pricing_model": "per_token",
        "price_input_per_mtok": "0.50",
        "price_output_per_mtok": "1.50",
        "compliance_level": "public",
        "data_residency": ["US"],
        "support_level": "basic",
    }
    values.update(overrides)
    return values


class _Upstream(BaseHTTPRequestHandler):
    status = 200
    body: Any = {"object": "list", "data": [{"id": "local-model", "object": "model"}]}
    headers_sent: dict[str, str] = {}
    requests: list[tuple[str, dict[str, str]]] = []

    def do_GET(self) -> None:
        type(self).requests.append((self.path, dict(self.headers)))
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        body = type(self).body
        body = body(self.path, sent) if callable(body) else body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in type(self).headers_sent.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_DELETE = do_GET

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def local_upstream() -> Iterator[type[_Upstream]]:
    """A real HTTP server on a free loopback port; set `.status`/`.body`/`.headers_sent` on the yielded class to change
    answers."""
    handler = type("Handler", (_Upstream,), {"requests": [], "status": 200, "body": _Upstream.body, "headers_sent": {}})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
