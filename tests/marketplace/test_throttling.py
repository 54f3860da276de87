"""The rate limits settings.base ships are on, for the REST API and /graphql alike: anonymous callers, per client IP,
get less than signed-in ones, per API key. The suite runs with raised rates (settings.test): these tests put the rates
of settings.base back and spend each one."""

from __future__ import annotations

import os
import time
from typing import Any

import pytest
from django.test import Client

from apps.consumption.services import create_api_key
from apps.tenancy.models import Role
from llm_infra_django.ratelimit.rates import parse_rate
from settings import base
from tests.apps.gateway.support import gql
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

BASE_RATES = base.LLM_INFRA["THROTTLE_RATES"]


def limit(scope: str) -> int:
    return parse_rate(BASE_RATES[scope]).limit


@pytest.fixture
def base_rates(settings: Any) -> None:
    settings.LLM_INFRA = {**settings.LLM_INFRA, "THROTTLE_RATES": BASE_RATES}


@pytest.fixture
def client_ip() -> str:
    """An address no other test uses, so no bucket is shared with them."""
    return "10." + ".".join(str(b) for b in os.urandom(3))


@pytest.fixture
def secret(db: Any) -> str:
    user, tenant = UserFactory(), TenantFactory()
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)
    return create_api_key(tenant=tenant, actor=user, name="reader", scopes=["read"])[1]


def rest(client: Client) -> Any:
    return client.get("/api/v1/models/absent/")  # throttles run before the view: its 404 is an answer


def graphql(client: Client) -> Any:
    return gql(client, "{ apiVersion }")


def test_anonymous_callers_get_less_than_signed_in_ones() -> None:
    assert limit("anon") < limit("user")
    assert limit("graphql_anon") < limit("graphql")


@pytest.mark.usefixtures("base_rates")
@pytest.mark.parametrize(
    ("surface", "scope", "signed_in"),
    [
        pytest.param(rest, "anon", False, id="rest-anonymous"),
        pytest.param(rest, "user", True, id="rest-key"),
        pytest.param(graphql, "graphql_anon", False, id="graphql-anonymous"),
        pytest.param(graphql, "graphql", True, id="graphql-key"),
    ],
)
def test_the_default_rates_are_on(
    surface: Any, scope: str, signed_in: bool, client_ip: str, request: pytest.FixtureRequest
) -> None:
    # given a caller, anonymous or with an API key
    headers = {"HTTP_AUTHORIZATION": f"Bearer {request.getfixturevalue('secret')}"} if signed_in else {}
    client = Client(REMOTE_ADDR=client_ip, **headers)

    # when it sends requests until one is refused (at most twice as many as its scope allows at once)
    rate, answered, started = parse_rate(BASE_RATES[scope]), 0, time.monotonic()
    while (response := surface(client)).status_code != 429 and answered < 2 * rate.limit:
        answered += 1
    elapsed = time.monotonic() - started

    # then the bucket ran out after the scope's rate, plus what it refilled meanwhile
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) >= 1
    assert rate.limit <= answered <= rate.limit + rate.limit * elapsed / rate.period + 1
