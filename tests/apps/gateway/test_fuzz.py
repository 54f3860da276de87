"""GraphQL fuzzing: documents and variables generated from the schema (hypothesis-graphql), valid and invalid, sent
over HTTP by a platform admin's session and by a tenant's admin key — never a 5xx, never a traceback, never an
internal error."""

from __future__ import annotations

import json
from typing import Any

import graphql
import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema

from apps.consumption.services import create_api_key
from apps.gateway.management.commands.export_graphql_schema import schema_sdl
from apps.publishing import services as publishing
from apps.tenancy.models import Role
from tests.apps.gateway.test_publishing_graphql import ECHO
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(600)]

SCHEMA = schema_sdl()


def _string(values: st.SearchStrategy[str]) -> st.SearchStrategy[graphql.StringValueNode]:
    return values.map(lambda value: graphql.StringValueNode(value=value))


NASTY = st.sampled_from(["", "' OR 1=1 --", "-1", "9" * 40, "NaN", "null", "\u0000", "ü" * 300, "0x1F", "1e309"])
SCALARS: dict[str, st.SearchStrategy[Any]] = {
    "Decimal": _string(st.one_of(st.decimals(allow_nan=False, allow_infinity=False).map(str), NASTY)),
    "DateTime": _string(st.one_of(st.datetimes().map(lambda d: d.isoformat() + "Z"), NASTY)),
    "Date": _string(st.one_of(st.dates().map(str), NASTY)),
    "UUID": _string(st.one_of(st.uuids().map(str), NASTY)),
    "BigInt": st.integers(-(2**70), 2**70).map(lambda n: graphql.IntValueNode(value=str(n))),
    "JSONString": _string(st.one_of(st.dictionaries(st.text(max_size=5), st.integers()).map(json.dumps), NASTY)),
    "GenericScalar": st.one_of(
        _string(NASTY),
        st.integers(-(2**40), 2**40).map(lambda n: graphql.IntValueNode(value=str(n))),
        st.just(graphql.ObjectValueNode(fields=())),
        st.just(graphql.ListValueNode(values=())),
    ),
}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.function_scoped_fixture,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


@pytest.fixture
def clients(db) -> dict[str, Client]:
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    owner = UserFactory(username="owner")
    acme = TenantFactory(slug="acme", trusted_publisher=True)
    MembershipFactory(tenant=acme, user=owner, role=Role.OWNER)
    MembershipFactory(tenant=acme, user=root, role=Role.OWNER)
    publishing.publish_service(publisher=acme, actor=owner, slug="echo", version="1.0.0", values=dict(ECHO))
    _, secret = create_api_key(tenant=acme, actor=owner, name="fuzz", scopes=["admin"])
    session = Client()
    session.force_login(root)
    return {"session": session, "key": Client(HTTP_AUTHORIZATION=f"Bearer {secret}")}


def assert_handled(client: Client, query: str) -> None:
    response = client.post("/graphql", {"query": query}, content_type="application/json")
    text = response.content.decode()
    assert response.status_code < 500, (query, text[:500])
    assert "Traceback" not in text and 'File "' not in text, (query, text[:500])
    body = json.loads(text)
    codes = [(e.get("extensions") or {}).get("code") for e in body.get("errors") or []]
    assert "internal_error" not in codes, (query, body["errors"][:3])


@pytest.mark.parametrize("who", ["session", "key"])
def test_generated_operations_never_break_the_gateway(clients: dict[str, Client], who: str) -> None:
    @FUZZ
    @given(query=from_schema(SCHEMA, custom_scalars=SCALARS))
    def run(query: str) -> None:
        assert_handled(clients[who], query)

    run()


def test_invalid_operations_are_refused_cleanly(clients: dict[str, Client]) -> None:
    @FUZZ
    @given(query=from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
    def run(query: str) -> None:
        assert_handled(clients["key"], query)

    run()
