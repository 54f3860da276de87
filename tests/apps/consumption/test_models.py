"""`GET /v1/models`: OpenAI's model list, each model with OpenRouter's extra fields (category, context length,
pricing), parsed by the official SDK, filtered by sharing, in a constant number of queries."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from django.test import Client

from apps.consumption.key_lookup import authenticate_sync
from apps.consumption.selectors import models_for_key
from apps.publishing import services as publishing
from apps.tenancy import sharing
from apps.tenancy.models import Role, SharingPolicy, Tier
from tests.apps.consumption.conftest import ECHO_DEFINITION
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory
from tests.support.asgi import proxy_application

pytestmark = pytest.mark.django_db(transaction=True)


def publish(provider: Any, slug: str, **values: Any) -> str:
    """Publish `acme/<slug>` on the echo provider; returns the service's id."""
    service, version, _ = publishing.publish_service(
        publisher=provider, actor=provider.owner, slug=slug, version="1.0.0", values={**ECHO_DEFINITION, **values}
    )
    version.refresh_from_db()
    assert version.status == "active", list(version.validation_runs.values_list("steps__messages", flat=True))
    return str(service.pk)


def share(provider: Any, service_id: str, **values: Any) -> None:
    sharing.create_policy(resource_type="service", resource_id=service_id, actor=provider.owner, **values)


def listed(secret: str) -> dict[str, dict[str, Any]]:
    response = Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert response.status_code == 200, response.content
    return {model["id"]: model for model in response.json()["data"]}


def test_each_model_carries_its_category_context_length_and_prices(provider, make_key) -> None:
    # given services priced per token (with a cached-input price), per request, and free
    publish(provider, "echo", price_cached_input_per_mtok="250")
    publish(
        provider,
        "per-call",
        category="embeddings",
        context_length=512,
        pricing_model="per_request",
        price_per_request="0.0025",
        price_input_per_mtok=None,
        price_output_per_mtok=None,
    )
    publish(provider, "gratis", pricing_model="free", price_input_per_mtok=None, price_output_per_mtok=None)

    # when
    models = listed(make_key())

    # then the prices are USD per token and per request, as decimal strings
    echo = models["acme/echo"]
    assert {key: echo[key] for key in ("object", "owned_by", "category", "context_length")} == {
        "object": "model",
        "owned_by": "acme",
        "category": "chat",
        "context_length": 8192,
    }
    assert isinstance(echo["created"], int)
    assert echo["pricing"] == {"prompt": "0.001", "completion": "0.002", "request": "0", "input_cache_read": "0.00025"}
    per_call = models["acme/per-call"]
    assert (per_call["category"], per_call["context_length"]) == ("embeddings", 512)
    assert per_call["pricing"] == {"prompt": "0", "completion": "0", "request": "0.0025"}
    assert models["acme/gratis"]["pricing"] == {"prompt": "0", "completion": "0", "request": "0"}


def test_a_tiny_per_token_price_is_a_plain_decimal(provider, make_key) -> None:
    # given $0.02 per million input tokens
    publish(provider, "cheap", price_input_per_mtok="0.02", price_output_per_mtok="0.0000000001")

    # when
    pricing = listed(make_key())["acme/cheap"]["pricing"]

    # then
    assert pricing["prompt"] == "0.00000002" and pricing["completion"] == "0.0000000000000001"


async def test_the_official_sdk_parses_the_list(api_key: str) -> None:
    # given the SDK, talking to the proxy's ASGI application
    transport = httpx.ASGITransport(app=proxy_application())
    async with httpx.AsyncClient(transport=transport) as http:
        client = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key=api_key, http_client=http, max_retries=0)

        # when
        models = [model async for model in client.models.list()]

    # then the standard fields parse, and the extra ones are kept
    (model,) = models
    assert (model.id, model.object, model.owned_by) == ("acme/echo", "model", "acme")
    assert model.model_extra == {
        "category": "chat",
        "context_length": 8192,
        "pricing": {"prompt": "0.001", "completion": "0.002", "request": "0"},
    }


def test_the_list_follows_sharing_in_a_constant_number_of_queries(
    provider, consumer, make_key, django_assert_max_num_queries
) -> None:
    # given services shared every way, and one of another publisher
    ids = {slug: publish(provider, slug) for slug in ("open", "public", "granted", "private", "listed", "blocked")}
    share(provider, ids["public"], visibility="public", requires_approval=False)
    share(provider, ids["granted"], visibility="tenant", allowed_tenants=["globex"], requires_approval=True)
    access = sharing.request_access(
        policy=SharingPolicy.objects.get(resource_id=ids["granted"]), consumer=consumer, actor=consumer.owner
    )
    sharing.approve_request(access=access, actor=provider.owner)
    share(provider, ids["private"], visibility="private")
    share(provider, ids["listed"], visibility="tenant", allowed_tenants=["globex"], requires_approval=True)
    share(provider, ids["blocked"], visibility="public", requires_approval=False, blocked_tenants=["globex"])
    key = authenticate_sync(f"Bearer {make_key()}")
    other = TenantFactory(slug="umbrella", trusted_publisher=True, tier=Tier.PROFESSIONAL)
    other.owner = MembershipFactory(tenant=other, user=UserFactory(username="umbrella-owner"), role=Role.OWNER).user
    publish(other, "elsewhere")

    # when (three queries for the services, two for the routed catalog models)
    with django_assert_max_num_queries(5):
        rows = models_for_key(key)

    # then the tenant sees what it may use: open by default, public, granted (not merely listed)
    assert [row["model_id"] for row in rows] == ["acme/granted", "acme/open", "acme/public", "umbrella/elsewhere"]
