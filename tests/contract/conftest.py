"""The contract world: a tenant with an admin-scoped API key, its owner, a published echo service, a catalog model
with a version, a dataset, a training run, an evaluation, and sharing both ways with a second tenant."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.consumption.services import create_api_key
from apps.tenancy import services as tenancy
from apps.tenancy import sharing
from apps.tenancy.models import Tier
from tests.apps.catalog.factories import artifact
from tests.apps.publishing.test_api import definition
from tests.apps.tenancy.factories import UserFactory
from tests.contract.support import API, World


def _reset_process_state() -> None:
    """Per-process caches (keys, routes) must not remember another test's rows."""
    from django.core.cache import cache

    from apps.consumption.keys import key_cache
    from apps.consumption.routing import route_cache

    key_cache.forget()
    route_cache.clear()
    cache.clear()


def _ok(response: Any) -> Any:
    assert response.status_code < 300, response.content
    return response.json()


def _model(client: APIClient, slug: str) -> dict[str, Any]:
    """A public model with a ready version 1.0.0."""
    model = _ok(
        client.post(
            f"{API}/models/",
            {"slug": slug, "name": slug.title(), "category": "chat", "license": "mit", "visibility": "public"},
            format="json",
        )
    )
    _ok(
        client.post(
            f"{API}/models/{model['handle']}/versions/",
            {"version": "1.0.0", "artifacts": [artifact(f"{slug}.safetensors")], "status": "ready"},
            format="json",
        )
    )
    return model


@pytest.fixture
def contract_world(transactional_db: Any) -> Iterator[World]:
    """Seeded through the services and the REST API itself, with the key the fuzzer then uses."""
    _reset_process_state()
    owner = UserFactory(username="contract-owner")
    staff = UserFactory(username="contract-staff", is_staff=True, is_superuser=True)
    UserFactory(username="contract-viewer")
    tenant = tenancy.create_tenant(name="Contract", slug="contract", owner=owner, tier=Tier.ENTERPRISE)
    tenancy.set_trusted_publisher(tenant=tenant, trusted=True, actor=staff)
    _key, secret = create_api_key(tenant=tenant, actor=owner, name="contract", scopes=["admin"])
    spare = [create_api_key(tenant=tenant, actor=owner, name=f"spare-{i}", scopes=["read"])[0] for i in range(3)]
    other_owner = UserFactory(username="contract-other")
    other = tenancy.create_tenant(name="Other", slug="other", owner=other_owner, tier=Tier.ENTERPRISE)
    _other_key, other_secret = create_api_key(tenant=other, actor=other_owner, name="other", scopes=["admin"])

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    other_client = APIClient()
    other_client.credentials(HTTP_AUTHORIZATION=f"Bearer {other_secret}")

    services = [
        _ok(client.post(f"{API}/services/", definition(slug=slug), format="json"))["service"]["id"]
        for slug in ("echo", "echo-retired", "echo-deleted")
    ]
    model, archived = _model(client, "echo-model"), _model(client, "archived-model")
    dataset = _ok(
        client.post(
            f"{API}/datasets/",
            {"slug": "tickets", "name": "Tickets", "license": "mit", "sources": [{"type": "manual"}]},
            format="json",
        )
    )
    run = _ok(
        client.post(
            f"{API}/training-runs/",
            {"name": "sft-1", "datasets": [dataset["handle"]], "model_version": f"{model['handle']}@1.0.0"},
            format="json",
        )
    )
    evaluation = _ok(
        client.post(
            f"{API}/evaluations/",
            {"model": model["handle"], "version": "1.0.0", "benchmark": "mmlu", "score": 71.5},
            format="json",
        )
    )
    _ok(client.post(f"{API}/tenants/{tenant.slug}/members/", {"username": "contract-viewer", "role": "viewer"}))
    members = _ok(client.get(f"{API}/tenants/{tenant.slug}/members/"))["results"]

    # Sharing both ways: another tenant asks for our model (a request we decide), we hold a grant on theirs.
    shared = {"resource_type": "model", "resource_id": model["id"], "visibility": "marketplace"}
    policy = _ok(client.post(f"{API}/sharing/policies/", {**shared, "requires_approval": True}, format="json"))
    received = _ok(other_client.post(f"{API}/sharing/requests/", {"policy": policy["id"]}, format="json"))
    theirs = _model(other_client, "other-model")
    their_policy = sharing.create_policy(
        resource_type="model",
        resource_id=theirs["id"],
        actor=other_owner,
        visibility="marketplace",
        requires_approval=False,
    )
    made = _ok(client.post(f"{API}/sharing/requests/", {"policy": str(their_policy.pk)}, format="json"))
    assert made["grant"], made

    yield World(
        secret=secret,
        tenant=tenant.slug,
        values={
            (f"{API}/tenants/", "slug"): [tenant.slug],
            (f"{API}/tenants/", "member_id"): [member["id"] for member in members],
            (f"{API}/tenants/", "quota_type"): ["tokens", "api_keys"],
            (f"{API}/models/", "slug"): [model["handle"]],
            (f"{API}/models/", "version"): ["1.0.0"],
            (f"{API}/datasets/", "ref"): [dataset["handle"]],
            (f"{API}/training-runs/", "id"): [run["id"]],
            (f"{API}/evaluations/", "id"): [evaluation["id"]],
            (f"{API}/services/", "id"): services[:1],
            (f"{API}/keys/", "id"): [str(spare[0].pk)],
            (f"{API}/sharing/policies/", "id"): [policy["id"]],
            (f"{API}/sharing/requests/", "id"): [received["id"], made["id"]],
            (f"{API}/sharing/grants/", "id"): [made["grant"]],
        },
        # What ends a row gets rows of its own, so that the operations after it still find theirs alive.
        own={
            f"DELETE {API}/services/{{id}}/": {"id": services[2:]},
            f"POST {API}/services/{{id}}/retire/": {"id": services[1:2]},
            f"DELETE {API}/models/{{slug}}/": {"slug": [archived["handle"]]},
            f"POST {API}/keys/{{id}}/revoke/": {"id": [str(spare[1].pk)]},
            f"POST {API}/keys/{{id}}/rotate/": {"id": [str(spare[2].pk)]},
            # Deactivating the world's own tenant is final: every operation after it would be refused.
            f"POST {API}/tenants/{{slug}}/deactivate/": {},
        },
    )
    _reset_process_state()
