"""Nested GraphQL queries run in a constant number of SQL queries, whatever the page size (the N+1 rule of §7)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.apps.gateway.support import data, gql, logged_in
from tests.support.marketplace_world import build

pytestmark = pytest.mark.django_db

# The query: services → publisher, versions → pricing, catalog model → name, evaluations. It is 11 levels
# deep and costs far more than 1000 at 50 services, so the test raises the limits: it is about SQL, not limits.
NESTED = """
query($first: Int!) {
  services(first: $first) {
    totalCount
    edges { node {
      publisher { name }
      versions { edges { node {
        version
        pricing { model inputPerMtok outputPerMtok }
        model { version model { name } evaluations { totalCount edges { node { benchmarkName score } } } }
      } } }
    } }
  }
}
"""
ROOMY = {"MAX_DEPTH": 20, "MAX_COST": 10_000_000}


def run(client, first: int) -> tuple[dict, int]:
    with CaptureQueriesContext(connection) as queries:
        result = data(gql(client, NESTED, {"first": first}))
    return result, len(queries.captured_queries)


def test_nested_services_run_in_the_same_number_of_queries_for_5_and_50(settings) -> None:
    settings.MARKETPLACE_GATEWAY = ROOMY
    world = build(50)
    client = logged_in(world.consumer)
    run(client, 1)  # the session and the caller's memberships are loaded once, like any warm client
    small, small_count = run(client, 5)
    large, large_count = run(client, 50)
    assert len(small["services"]["edges"]) == 5 and len(large["services"]["edges"]) == 50
    node = large["services"]["edges"][0]["node"]
    assert node["publisher"]["name"].startswith("Publisher ")
    versions = node["versions"]["edges"]
    assert len(versions) == 2
    model = versions[0]["node"]["model"]
    assert model["model"]["name"].startswith("Model ") and model["evaluations"]["totalCount"] == 2
    assert large_count == small_count, f"{small_count} queries for 5 services, {large_count} for 50"
    assert large_count <= 15
