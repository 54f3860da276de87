"""Choosing among offers (pure functions): what preferences allow, the order of attempts, preferences merged."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.consumption import choosing, preferences
from apps.consumption.choosing import Offer
from apps.consumption.preferences import Preferences
from apps.publishing.selectors import Route
from llm_infra_django.errors import ValidationError


def route(slug: str, price: str, **values: Any) -> Route:
    fields: dict[str, Any] = {
        "model_id": "acme/llama",
        "version_id": f"v-{slug}",
        "service_id": f"s-{slug}",
        "publisher_id": "p",
        "publisher_slug": "acme",
        "service_slug": slug,
        "version": "1.0.0",
        "status": "active",
        "protocol": "echo",
        "endpoint_url": "",
        "upstream_model": "",
        "auth_kind": "none",
        "upstream_secret_encrypted": "",
        "pricing_model": "per_token",
        "price_input_per_mtok": Decimal(price),
        "price_output_per_mtok": Decimal(price),
        "price_cached_input_per_mtok": None,
        "price_per_request": None,
        "sla_timeout_ms": 1000,
        "context_length": 8192,
        "category": "chat",
    }
    return Route(**{**fields, **values})


def ids(offers: list[Offer]) -> list[str]:
    return [offer.offer_id for offer in offers]


def test_order_comes_first_then_healthy_then_unhealthy() -> None:
    a, b, c = Offer(route("a", "1")), Offer(route("b", "2"), healthy=False), Offer(route("c", "3"))
    plan = choosing.plan([a, b, c], Preferences(order=("acme/c",)))
    assert ids(plan) == ["acme/c", "acme/a", "acme/b"]
    # an unhealthy offer named in `order` is still tried first: the caller asked for it
    assert ids(choosing.plan([a, b, c], Preferences(order=("acme/b",))))[0] == "acme/b"
    # without fallbacks, one attempt
    assert ids(choosing.plan([a, b, c], Preferences(allow_fallbacks=False, sort="price"))) == ["acme/a"]


def test_unhealthy_offers_get_only_fallback_traffic() -> None:
    offers = [Offer(route("cheap", "1"), healthy=False), Offer(route("dear", "50"))]
    choosing.rng.seed(3)
    assert {ids(choosing.plan(offers, Preferences()))[0] for _ in range(200)} == {"acme/dear"}


@pytest.mark.parametrize(
    ("sort", "first"),
    [("price", "acme/a"), ("latency", "acme/b"), ("throughput", "acme/c")],
)
def test_sorts(sort: str, first: str) -> None:
    offers = [
        Offer(route("a", "1"), p50_ms=300, throughput=10),
        Offer(route("b", "2"), p50_ms=100, throughput=20),
        Offer(route("c", "3"), p50_ms=None, throughput=90),
    ]
    assert ids(choosing.plan(offers, Preferences(sort=sort)))[0] == first


def test_filters() -> None:
    offers = [
        Offer(route("us", "1", data_residency=("US",), compliance_level="public")),
        Offer(route("eu", "5", data_residency=("FR", "DE"), compliance_level="confidential")),
        Offer(route("tools", "2", parameters=frozenset({"tools", "temperature"}))),
    ]
    assert ids(choosing.allowed(offers, Preferences(data_residency=frozenset({"FR", "DE"})), frozenset())) == [
        "acme/eu"
    ]
    # an offer declaring no residency is not known to process anywhere in particular: excluded by a restriction
    assert ids(choosing.allowed(offers, Preferences(data_residency=frozenset({"FR"})), frozenset())) == []
    assert ids(choosing.allowed(offers, Preferences(max_price={"prompt": Decimal(2)}), frozenset())) == [
        "acme/us",
        "acme/tools",
    ]
    assert ids(choosing.allowed(offers, Preferences(compliance=frozenset({"confidential"})), frozenset())) == [
        "acme/eu"
    ]
    required = Preferences(require_parameters=True)
    assert ids(choosing.allowed(offers, required, frozenset({"tools"}))) == ["acme/tools"]
    assert ids(choosing.allowed(offers, Preferences(), frozenset({"tools"}))) == ids(offers)


def test_a_request_narrows_the_key_and_tenant_restrictions_never_widens_them() -> None:
    settings, _ = preferences.parse({"only": ["acme/a", "acme/b"], "data_residency": ["EU", "US"], "sort": "price"})
    request, given = preferences.parse({"only": ["acme/b", "acme/c"], "data_residency": ["US", "JP"]})
    merged = settings.narrowed_by(request, given)
    assert merged.only == frozenset({"acme/b"})
    assert merged.data_residency == frozenset({"US"})
    assert merged.sort == "price"  # the request chose nothing: the settings' choice stays
    chosen, given = preferences.parse({"sort": "latency", "max_price": {"prompt": 5}})
    capped, _ = preferences.parse({"max_price": {"prompt": 2}})
    merged = capped.narrowed_by(chosen, given)
    assert merged.sort == "latency" and merged.max_price == {"prompt": Decimal(2)}


def test_models_list_and_parameters() -> None:
    assert preferences.fallback_models(["a/b", "c/d"]) == ("a/b", "c/d")
    with pytest.raises(ValidationError) as raised:
        preferences.fallback_models("a/b")
    assert "models" in raised.value.details["fields"]
    assert preferences.request_parameters({"model": "x", "messages": [], "tools": [], "seed": 1}) == {"tools", "seed"}


def test_the_reservation_covers_the_dearest_candidate_and_the_narrowest_context() -> None:
    from datetime import UTC, datetime

    from apps.consumption.call import Call
    from apps.consumption.estimates import estimate
    from apps.consumption.pricing import reservation_price

    call = Call(request_id="r", kind="chat", started=0.0, started_at=datetime.now(UTC))
    call.body = {"model": "acme/llama", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 10}
    cheap, dear = route("cheap", "1"), route("dear", "90")
    estimate(call, [cheap, dear])
    assert call.reservation == reservation_price(dear, call.prompt_bound, 10) > reservation_price(cheap, 1, 10)
    assert call.candidates == [cheap, dear]

    # a candidate whose context cannot hold the call is dropped; the default completion fits the narrowest left
    call.body = {"model": "acme/llama", "messages": [{"role": "user", "content": "Hello there " * 10}]}
    small, large = route("small", "1", context_length=4), route("large", "1", context_length=2000)
    estimate(call, [small, large])
    assert call.candidates == [large]
    tiny = route("tiny", "1", context_length=300)
    call.body = {"model": "acme/llama", "messages": [{"role": "user", "content": "Hello"}]}
    estimate(call, [large, tiny])
    assert call.completion_estimate == 300 - call.prompt_estimate
