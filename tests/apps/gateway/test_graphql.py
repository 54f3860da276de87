"""The /graphql gateway over HTTP: scoping, limits before execution, mutation payload errors, schema drift."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from apps.consumption.services import create_api_key
from apps.gateway.management.commands.export_graphql_schema import schema_sdl
from apps.tenancy.models import Role
from tests.apps.gateway.support import data, gql, logged_in
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

SCOPES = ("graphql", "graphql_anon")

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
# Cheap to run, but validation compares their selections pairwise: about a second of CPU each.
MANY_FRAGMENTS = (
    "{"
    + "".join(f" ...F{i}" for i in range(400))
    + " }"
    + "".join(f" fragment F{i} on Query {{ apiVersion }}" for i in range(400))
)
MANY_ALIASES = "{" + " a: apiVersion" * 990 + " }"
# An empty page is still validated: what it selects counts once (1 + 3 + 4 × 301 = 1 208).
COSTLY_UNDER_AN_EMPTY_PAGE = (
    "query { tenants(first: 0) { edges { node { "
    + " ".join(f"m{i}: members(first: 100) {{ edges {{ node {{ id }} }} }}" for i in range(4))
    + " } } } }"
)
# Seven pages of services: 7 × (1 + 100 × 3) = 2 107 with pages of 100, 7 × (1 + 20 × 3) = 427 with the default 20.
SEVEN_PAGES = " ".join(f"s{i}: services(first: FIRST) {{ edges {{ node {{ id }} }} }}" for i in range(7))
MISTYPED = [
    pytest.param("{ apiVersoin }", None, id="field"),
    pytest.param("{ services(frist: 1) { totalCount } }", None, id="argument"),
    pytest.param("query($q: Strnig) { services(search: $q) { totalCount } }", None, id="type"),
    pytest.param('mutation { modelCreate(input: {nmae: "x", slug: "x"}) { errors { field } } }', None, id="input"),
    pytest.param(
        "mutation($i: CatalogModelCreateInput!) { modelCreate(input: $i) { errors { field } } }",
        {"i": {"nmae": "x", "slug": "x"}},
        id="variable",  # coerced when the operation runs, after validation
    ),
]


def doubling(fragments: int, *, cyclic: bool = False) -> str:
    """A document of a few hundred bytes whose every fragment spreads the previous one twice: 2**fragments fields
    once expanded (`cyclic`: the first fragment spreads the last one too)."""
    first = "fragment F0 on Query { apiVersion" + (f" ...F{fragments}" if cyclic else "") + " }"
    others = [f"fragment F{i} on Query {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, fragments + 1)]
    return "\n".join([f"query {{ ...F{fragments} }}", first, *others])


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
        (COSTLY_UNDER_AN_EMPTY_PAGE, "cost"),
        (MANY_FRAGMENTS, "size"),
        (MANY_ALIASES, "size"),
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


@pytest.mark.timeout(5)  # measured by expanding every spread, 20 fragments took 3 s of CPU, 25 about 2 minutes
@pytest.mark.parametrize("fragments", [20, 25, 30])
def test_fragments_spreading_fragments_are_refused_on_their_cost_without_being_expanded(fragments: int) -> None:
    # given an anonymous caller's document, a few hundred bytes, of 2**fragments fields once expanded
    document = doubling(fragments)

    # when
    body = gql(Client(), document).json()

    # then it is refused on the cost of the expansion, well within the alarm
    assert body.get("data") is None
    assert body["errors"] == [
        {"message": f"Query cost {2**fragments} exceeds the limit of 1000.", "extensions": {"code": "query_limit"}}
    ]


@pytest.mark.timeout(5)
def test_fragments_spreading_each_other_in_a_cycle_are_refused() -> None:
    body = gql(Client(), doubling(30, cyclic=True)).json()
    assert body.get("data") is None
    assert "within itself" in body["errors"][0]["message"]


def test_a_long_chain_of_fragments_is_refused_cleanly(caplog) -> None:
    # given fragments spreading the next one, 500 deep, within the size limit
    chain = "".join(f"fragment F{i} on Query {{ ...F{i + 1} }}" for i in range(500))
    document = "{ ...F0 } " + chain + "fragment F500 on Query { apiVersion }"

    # when
    body = gql(Client(), document).json()

    # then it is measured (without running out of stack on the way) and refused
    assert body["errors"] == [
        {"message": "Query size 502 selections exceeds the limit of 300.", "extensions": {"code": "query_limit"}}
    ]
    assert "graphql_unhandled_exception" not in caplog.text


@pytest.mark.parametrize(
    ("operation", "variables"),
    [
        pytest.param("query { " + SEVEN_PAGES.replace("FIRST", "100") + " }", None, id="literal"),
        pytest.param("query($n: Int) { " + SEVEN_PAGES.replace("FIRST", "$n") + " }", {"n": 100}, id="variable"),
        pytest.param("query($n: Int = 100) { " + SEVEN_PAGES.replace("FIRST", "$n") + " }", None, id="default"),
    ],
)
def test_pages_are_measured_as_they_will_run(operation: str, variables: dict | None) -> None:
    body = gql(Client(), operation, variables).json()
    assert body.get("data") is None
    assert body["errors"] == [
        {"message": "Query cost 2107 exceeds the limit of 1000.", "extensions": {"code": "query_limit"}}
    ]


def test_a_variable_given_wins_over_its_default(world) -> None:
    operation = "query($n: Int = 100) { " + SEVEN_PAGES.replace("FIRST", "$n") + " }"
    assert data(gql(logged_in(world["alice"]), operation, {"n": 2}))["s0"] == {"edges": []}


@pytest.mark.parametrize(("document", "variables"), MISTYPED)
def test_without_introspection_errors_suggest_no_names(settings, document: str, variables: dict | None) -> None:
    # given the same mistake sent with introspection on, then off
    settings.MARKETPLACE_GATEWAY = {"INTROSPECTION": True}
    suggested = [error["message"] for error in gql(Client(), document, variables).json()["errors"]]
    settings.MARKETPLACE_GATEWAY = {"INTROSPECTION": False}

    # when
    messages = [error["message"] for error in gql(Client(), document, variables).json()["errors"]]

    # then the error is the same, without the names graphql-core would suggest
    assert any("Did you mean" in message for message in suggested)
    assert messages == [message.split(" Did you mean ")[0] for message in suggested]


def test_anonymous_callers_are_limited_per_client_ip_as_trusted_proxies_report_it(settings) -> None:
    # given one trusted proxy in front, and one request a minute for everyone
    settings.LLM_INFRA = {**settings.LLM_INFRA, "NUM_PROXIES": 1, "THROTTLE_RATES": dict.fromkeys(SCOPES, "1/min")}
    proxy = Client(REMOTE_ADDR="192.0.2.1")
    client, neighbour = ("10." + ".".join(str(b) for b in os.urandom(3)) for _ in range(2))

    # when a client asks twice, the second time with a forged address on the left, and a neighbour asks once
    first = gql(proxy, "{ apiVersion }", HTTP_X_FORWARDED_FOR=client)
    forged = gql(proxy, "{ apiVersion }", HTTP_X_FORWARDED_FOR=f"203.0.113.9, {client}")
    other = gql(proxy, "{ apiVersion }", HTTP_X_FORWARDED_FOR=neighbour)

    # then
    assert (first.status_code, forged.status_code, other.status_code) == (200, 429, 200)
    assert forged.json()["errors"][0]["extensions"]["code"] == "rate_limit_exceeded"


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
