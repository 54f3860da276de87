"""Fixtures of the catalog tests: two tenants with their admins, service-made models, a local evaluator server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from apps.catalog import services
from apps.catalog.models import CatalogModel, ModelStatus, ModelVersion
from apps.tenancy.models import Role, Tenant, Tier
from tests.apps.catalog.factories import artifact
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory


@pytest.fixture
def alice(db: Any) -> Any:
    return UserFactory(username="alice")


@pytest.fixture
def acme(alice: Any) -> Tenant:
    """The provider tenant; alice owns it."""
    tenant = TenantFactory(slug="acme", name="Acme", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=tenant, user=alice, role=Role.OWNER)
    return tenant


@pytest.fixture
def bob(db: Any) -> Any:
    return UserFactory(username="bob")


@pytest.fixture
def globex(bob: Any) -> Tenant:
    """Another tenant; bob owns it and must never see acme's private rows."""
    tenant = TenantFactory(slug="globex", name="Globex", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=tenant, user=bob, role=Role.OWNER)
    return tenant


@pytest.fixture
def make_model(acme: Tenant, alice: Any) -> Callable[..., CatalogModel]:
    """Create a model through the services (owner acme unless given)."""

    def make(slug: str = "support-llama", *, owner: Tenant | None = None, actor: Any = None, **values: Any) -> Any:
        values.setdefault("name", slug.replace("-", " ").title())
        return services.create_model(owner=owner or acme, actor=actor or alice, slug=slug, values=values)

    return make


@pytest.fixture
def make_version(alice: Any) -> Callable[..., ModelVersion]:
    """Add a ready version with one artifact through the services."""

    def make(model: CatalogModel, version: str = "1.0.0", *, actor: Any = None, **values: Any) -> ModelVersion:
        values.setdefault("artifacts", [artifact(f"{model.slug}-{version}.safetensors")])
        values.setdefault("status", "ready")
        return services.create_version(model=model, actor=actor or alice, version=version, values=values)

    return make


@pytest.fixture
def published(make_model: Any, make_version: Any, alice: Any) -> Callable[..., CatalogModel]:
    """A published model with one ready version."""

    def make(slug: str = "support-llama", version: str = "1.0.0", **values: Any) -> CatalogModel:
        values.setdefault("visibility", "public")
        model = make_model(slug, **values)
        make_version(model, version)
        return services.change_model_status(model=model, actor=alice, status=ModelStatus.PUBLISHED)

    return make


class _Evaluator(BaseHTTPRequestHandler):
    status = 200
    body: Any = {"status": "completed", "score": 71.5, "scores": {"acc": 71.5}}
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        sent = json.loads(self.rfile.read(length)) if length else None
        type(self).received.append({"path": self.path, "json": sent, "headers": dict(self.headers)})
        body = type(self).body
        body = body(sent) if callable(body) else body
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def evaluator_server() -> Iterator[type[_Evaluator]]:
    """A real HTTP evaluator on a free loopback port; set `.status`/`.body` on the yielded class to change answers."""
    handler = type("Handler", (_Evaluator,), {"received": [], "status": 200, "body": _Evaluator.body})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()
