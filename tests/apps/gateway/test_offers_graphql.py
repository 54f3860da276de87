"""The `offers` of a catalog model through GraphQL (the REST list's data, batched for a page of models) and the
`offerModel` / `unlinkOffer` mutations."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import CatalogModel, ServedBy
from apps.consumption.sla import CACHE_PREFIX
from apps.publishing.models import ServiceVersion
from apps.tenancy.models import Role, Tenant
from tests.apps.catalog.factories import CatalogModelFactory, ModelVersionFactory
from tests.apps.gateway.support import data, gql, logged_in
from tests.apps.publishing.test_discovery import make_version
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

OFFERS = """
query($slug: String!) {
  catalogModel(slug: $slug) {
    openOffers
    offers {
      linkId id offer model modelVersion provider status contextLength dataResidency complianceLevel parameters
      prices { model inputPerMtok outputPerMtok perRequest }
      health { healthy breaker requests availability errorRate p50Ms p95Ms throughputTps }
    }
  }
}
"""
PAGE = """
query($first: Int!) {
  catalogModels(first: $first) { edges { node { handle offers { offer provider health { breaker } } } } }
}
"""
OFFER_MODEL = """
mutation($model: String!, $serviceVersion: ID!, $modelVersion: String) {
  offerModel(model: $model, serviceVersion: $serviceVersion, modelVersion: $modelVersion) {
    offer { linkId offer modelVersion }
    errors { field code message }
  }
}
"""
UNLINK_OFFER = """
mutation($model: String!, $linkId: ID!) {
  unlinkOffer(model: $model, linkId: $linkId) { ok errors { field code } }
}
"""


def owned_by(slug: str, username: str) -> tuple[Tenant, Any]:
    tenant = TenantFactory(slug=slug)
    user = UserFactory(username=username)
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)
    return tenant, user


@pytest.fixture
def world() -> dict[str, Any]:
    """acme's open public model `acme--llama@1.0.0`; globex's active `globex/host@1.0.0`."""
    acme, alice = owned_by("acme", "alice")
    globex, bob = owned_by("globex", "bob")
    model = CatalogModelFactory(owner=acme, slug="llama", open_offers=True)
    ModelVersionFactory(model=model, version="1.0.0")
    host = make_version(globex, "host", price_input_per_mtok="2", price_output_per_mtok="6", data_residency=["US"])
    return {"acme": acme, "alice": alice, "globex": globex, "bob": bob, "model": model, "host": host}


def test_a_provider_offers_a_model_and_its_offers_show_prices_and_health(world: dict[str, Any]) -> None:
    # given
    host: ServiceVersion = world["host"]
    cache.set(CACHE_PREFIX + str(host.pk), {"requests": 10, "availability": 100.0, "p95_ms": 420.0})

    # when
    offered = data(gql(logged_in(world["bob"]), OFFER_MODEL, {"model": "acme--llama", "serviceVersion": str(host.pk)}))
    listed = data(gql(logged_in(world["alice"]), OFFERS, {"slug": "acme--llama"}))

    # then
    assert offered["offerModel"]["errors"] == []
    assert offered["offerModel"]["offer"]["offer"] == "globex/host@1.0.0"
    model = listed["catalogModel"]
    assert model["openOffers"] is True
    [row] = model["offers"]
    assert row["linkId"] == offered["offerModel"]["offer"]["linkId"]
    assert (row["id"], row["model"], row["modelVersion"], row["provider"]) == (
        "globex/host",
        "acme/llama",
        "1.0.0",
        "globex",
    )
    assert row["prices"]["inputPerMtok"] == "2" and row["prices"]["outputPerMtok"] == "6"
    assert row["dataResidency"] == ["US"]
    assert row["health"]["breaker"] == "closed" and row["health"]["healthy"] is True
    assert row["health"]["requests"] == 10 and row["health"]["p95Ms"] == 420.0


def test_a_closed_model_refuses_the_offer_naming_the_field(world: dict[str, Any]) -> None:
    # given
    CatalogModel.objects.filter(pk=world["model"].pk).update(open_offers=False)

    # when
    result = data(
        gql(logged_in(world["bob"]), OFFER_MODEL, {"model": "acme--llama", "serviceVersion": str(world["host"].pk)})
    )

    # then
    assert result["offerModel"]["offer"] is None
    assert [e["field"] for e in result["offerModel"]["errors"]] == ["model_version"]


def test_only_the_owner_or_the_provider_unlinks(world: dict[str, Any]) -> None:
    # given
    link = ServedBy.objects.create(model_version=world["model"].versions.get(), service_version=world["host"])
    _, mallory = owned_by("initech", "mallory")
    variables = {"model": "acme--llama", "linkId": str(link.pk)}

    # when
    refused = data(gql(logged_in(mallory), UNLINK_OFFER, variables))["unlinkOffer"]
    unlinked = data(gql(logged_in(world["alice"]), UNLINK_OFFER, variables))["unlinkOffer"]

    # then
    assert refused["ok"] is False and refused["errors"][0]["code"] == "authorization_error"
    assert unlinked == {"ok": True, "errors": []}
    assert not ServedBy.objects.exists()


def test_offers_of_a_page_of_models_cost_the_same_queries_for_3_and_12(world: dict[str, Any]) -> None:
    # given twelve open models, each offered by globex
    for index in range(11):
        model = CatalogModelFactory(owner=world["acme"], slug=f"m-{index}", open_offers=True)
        version = ModelVersionFactory(model=model, version="1.0.0")
        ServedBy.objects.create(model_version=version, service_version=make_version(world["globex"], f"h-{index}"))
    ServedBy.objects.create(model_version=world["model"].versions.get(), service_version=world["host"])
    client = logged_in(world["bob"])
    data(gql(client, PAGE, {"first": 1}))  # the session is loaded once, as for any warm client

    def run(first: int) -> tuple[dict[str, Any], int]:
        with CaptureQueriesContext(connection) as queries:
            result = data(gql(client, PAGE, {"first": first}))
        return result, len(queries.captured_queries)

    # when
    small, small_count = run(3)
    assert len(small["catalogModels"]["edges"]) == 3
    large, large_count = run(12)

    # then
    assert len(large["catalogModels"]["edges"]) == 12
    assert all(len(edge["node"]["offers"]) == 1 for edge in large["catalogModels"]["edges"])
    assert large_count == small_count, f"{small_count} queries for 3 models, {large_count} for 12"
