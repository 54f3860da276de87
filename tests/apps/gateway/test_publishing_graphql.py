"""Publishing through /graphql: discovery scoped as in REST, model-id resolution."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.publishing import services as publishing
from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

SERVICES = """
query($search: String) {
  services(search: $search, first: 10) { totalCount facets items { modelId status publisher name } }
}
"""
MODEL = "query($id: String!) { model(modelId: $id) { modelId version status } }"
DEFINITION = {
    "name": "Echo Chat",
    "description": "A deterministic chat model for tests.",
    "category": "chat",
    "protocol": "echo",
    "pricing_model": "per_token",
    "price_input_per_mtok": "1",
    "price_output_per_mtok": "2",
    "data_residency": ["US"],
}


@pytest.fixture
def world():
    owner, untrusted_owner, consumer = UserFactory(username="pub"), UserFactory(username="slow"), UserFactory()
    acme = TenantFactory(slug="acme", trusted_publisher=True)
    initech = TenantFactory(slug="initech", trusted_publisher=False)
    globex = TenantFactory(slug="globex")
    MembershipFactory(tenant=acme, user=owner, role=Role.OWNER)
    MembershipFactory(tenant=initech, user=untrusted_owner, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=consumer, role=Role.OWNER)
    publishing.publish_service(publisher=acme, actor=owner, slug="echo", version="1.0.0", values=dict(DEFINITION))
    publishing.publish_service(
        publisher=initech,
        actor=untrusted_owner,
        slug="waiting",
        version="1.0.0",
        values=dict(DEFINITION, name="Waiting"),
    )
    return {"consumer": consumer, "untrusted_owner": untrusted_owner}


def gql(user, query: str, variables: dict | None = None) -> dict:
    client = Client()
    client.force_login(user)
    return client.post(
        "/graphql", {"query": query, "variables": variables or {}}, content_type="application/json"
    ).json()


def test_consumers_discover_active_services_only(world) -> None:
    body = gql(world["consumer"], SERVICES)
    assert "errors" not in body, body
    page = body["data"]["services"]
    assert [item["modelId"] for item in page["items"]] == ["acme/echo"]
    assert page["totalCount"] == 1 and page["facets"]["category"] == {"chat": 1}


def test_publishers_see_their_own_services_in_every_state(world) -> None:
    items = gql(world["untrusted_owner"], SERVICES)["data"]["services"]["items"]
    assert {(i["modelId"], i["status"]) for i in items} == {
        ("acme/echo", "active"),
        ("initech/waiting", "pending_approval"),
    }


def test_model_ids_resolve_for_those_who_may_see_them(world) -> None:
    assert gql(world["consumer"], MODEL, {"id": "acme/echo"})["data"]["model"] == {
        "modelId": "acme/echo",
        "version": "1.0.0",
        "status": "active",
    }
    assert gql(world["consumer"], MODEL, {"id": "initech/waiting"})["data"]["model"] is None
    assert gql(world["consumer"], MODEL, {"id": "not-an-id"})["data"]["model"] is None
