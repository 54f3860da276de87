"""The /graphql gateway over HTTP: scoping, limits before execution, mutation payload errors, schema drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.consumption.services import create_api_key
from apps.gateway.management.commands.export_graphql_schema import schema_sdl
from apps.tenancy.models import Role
from tests.apps.gateway.support import gql, logged_in
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

TENANTS = """
query {
  tenants(first: 10) {
    totalCount
    edges { node { id slug members(first: 5) { totalCount edges { node { username role } } } } }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { ... on TenantNode { slug auditLog { totalCount } } } }"
MEMBER_ADD = """
mutation($slug: String!, $username: String!, $role: String!) {
  memberAdd(tenantSlug: $slug, username: $username, role: $role) {
    member { username role }
    errors { field message code }
  }
}
"""
DEEP = """
query { services { edges { node { versions { edges { node {
  model { evaluations { edges { node { score } } } }
} } } } } } }
"""
DEEP_BY_FRAGMENTS = """
query { services { edges { node { ...Versions } } } }
fragment Versions on ServiceNode { versions { edges { node { ...Model } } } }
fragment Model on ServiceVersionNode { model { evaluations { edges { node { score } } } } }
"""
DEEP_INTROSPECTION = "query { __schema { types { " + "fields { type { " * 60 + "name" + " } }" * 60 + " } } }"
COSTLY = "query { tenants(first: 100) { edges { node { members(first: 100) { edges { node { id } } } } } } }"
COSTLY_BY_ALIASES = (
    "query { " + " ".join(f"t{i}: tenants(first: 100) {{ edges {{ node {{ slug }} }} }}" for i in range(4)) + " }"
)


@pytest.fixture
def world(db):
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    MembershipFactory(tenant=acme, user=alice, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=bob, role=Role.OWNER)
    return {"alice": alice, "bob": bob, "acme": acme, "globex": globex}


def test_tenants_are_scoped_to_the_caller(world) -> None:
    body = gql(logged_in(world["alice"]), TENANTS).json()
    assert "errors" not in body, body
    tenants = body["data"]["tenants"]
    assert tenants["totalCount"] == 1
    assert [e["node"]["slug"] for e in tenants["edges"]] == ["acme"]
    assert tenants["edges"][0]["node"]["members"]["edges"][0]["node"] == {"username": "alice", "role": "owner"}


def test_another_tenants_node_id_reveals_nothing(world) -> None:
    acme_id = gql(logged_in(world["alice"]), TENANTS).json()["data"]["tenants"]["edges"][0]["node"]["id"]
    body = gql(logged_in(world["bob"]), NODE, {"id": acme_id}).json()
    assert body["data"]["node"] is None


def test_an_api_key_sees_its_own_tenant_only_and_needs_a_write_scope_to_mutate(world) -> None:
    _, secret = create_api_key(tenant=world["globex"], actor=world["bob"], name="gql", scopes=["read"])
    body = gql(Client(), TENANTS, HTTP_AUTHORIZATION=f"Bearer {secret}").json()
    assert [e["node"]["slug"] for e in body["data"]["tenants"]["edges"]] == ["globex"]
    refused = gql(
        Client(),
        MEMBER_ADD,
        {"slug": "globex", "username": "alice", "role": "member"},
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    ).json()
    assert refused["errors"][0]["extensions"]["code"] == "insufficient_scope"


def test_mutation_errors_are_payload_errors(world) -> None:
    client = logged_in(world["alice"])
    bad = gql(client, MEMBER_ADD, {"slug": "acme", "username": "bob", "role": "emperor"}).json()
    assert "errors" not in bad, bad
    assert bad["data"]["memberAdd"]["errors"][0]["field"] == "role"
    foreign = gql(client, MEMBER_ADD, {"slug": "globex", "username": "alice", "role": "member"}).json()
    assert foreign["data"]["memberAdd"]["errors"][0]["code"] == "not_found"
    ok = gql(client, MEMBER_ADD, {"slug": "acme", "username": "bob", "role": "member"}).json()
    assert ok["data"]["memberAdd"] == {"member": {"username": "bob", "role": "member"}, "errors": []}


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        (DEEP, "depth"),
        (DEEP_BY_FRAGMENTS, "depth"),
        (COSTLY, "cost"),
        (COSTLY_BY_ALIASES, "cost"),
    ],
)
def test_limits_refuse_before_any_sql(world, query: str, limit: str) -> None:
    client = logged_in(world["alice"])
    gql(client, "{ apiVersion }")  # the session is loaded once
    with CaptureQueriesContext(connection) as queries:
        body = gql(client, query).json()
    assert body.get("data") is None
    assert body["errors"][0]["extensions"]["code"] == "query_limit"
    assert f"Query {limit}" in body["errors"][0]["message"]
    assert not [q for q in queries.captured_queries if "tenancy_" in q["sql"]]


def test_unauthenticated_mutations_are_refused(world) -> None:
    body = gql(Client(), MEMBER_ADD, {"slug": "acme", "username": "bob", "role": "member"}).json()
    assert body["errors"][0]["extensions"]["code"] == "authentication_error"


def test_responses_are_never_cached_across_users(world) -> None:
    response = gql(logged_in(world["alice"]), TENANTS)
    assert "no-store" in response["Cache-Control"]


def test_the_committed_schema_matches_the_code() -> None:
    committed = (Path(__file__).resolve().parents[3] / "schema.graphql").read_text()
    assert committed == schema_sdl(), "schema.graphql drifted: run manage.py export_graphql_schema --out schema.graphql"


def test_graphiqls_introspection_query_is_within_the_limits(world) -> None:
    from graphql import get_introspection_query

    body = gql(logged_in(world["alice"]), get_introspection_query(descriptions=True)).json()
    assert "errors" not in body, body["errors"][:1]
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


def test_session_mutations_need_the_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["alice"])
    variables = {"slug": "acme", "username": "bob", "role": "member"}
    refused = gql(client, MEMBER_ADD, variables)
    assert refused.status_code == 403 and refused.json()["errors"][0]["extensions"]["code"] == "csrf_failed"
    client.get("/admin/")  # a page with a form sets the csrftoken cookie
    accepted = gql(client, MEMBER_ADD, variables, HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value).json()
    assert accepted["data"]["memberAdd"]["errors"] == []


def test_a_get_without_a_query_is_a_clear_400(world, caplog) -> None:
    response = logged_in(world["alice"]).get("/graphql", HTTP_ACCEPT="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "bad_request"
    assert "graphql_unhandled_exception" not in caplog.text


def test_deep_introspection_is_refused_by_graphqls_own_rule(world) -> None:
    """Introspection is exempt from our depth limit (GraphiQL needs 15 levels) but not from graphql-core's cycle
    rule, which stops `fields { type { fields ...` loops."""
    body = gql(logged_in(world["alice"]), DEEP_INTROSPECTION).json()
    assert body.get("data") is None
    assert "introspection depth" in body["errors"][0]["message"]
