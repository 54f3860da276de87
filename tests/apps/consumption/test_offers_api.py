"""`/api/v1/models/<handle>/offers/`: a catalog model's offers with prices and health, offering one of your service
versions, unlinking an offer (its model's owner or its provider, nobody else)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from apps.catalog import services as catalog
from apps.catalog.models import CatalogModel, ServedBy
from apps.consumption.sla import CACHE_PREFIX
from apps.publishing.models import ServiceVersion
from apps.tenancy.models import Role, Tenant
from tests.apps.catalog.factories import artifact
from tests.apps.publishing.test_discovery import make_version
from tests.apps.tenancy.api_support import assert_error
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1/models"


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def model(provider: Tenant) -> CatalogModel:
    """acme's public published model `acme--support-llama` (apache-2.0: open to offers) with versions 1.0.0, 1.1.0."""
    owner = provider.owner
    made = catalog.create_model(
        owner=provider,
        actor=owner,
        slug="support-llama",
        values={"name": "Support Llama", "license": "apache-2.0", "visibility": "public"},
    )
    for number in ("1.0.0", "1.1.0"):
        catalog.create_version(
            model=made, actor=owner, version=number, values={"artifacts": [artifact(number)], "status": "ready"}
        )
    return catalog.change_model_status(model=made, actor=owner, status="published")


@pytest.fixture
def hosted(consumer: Tenant) -> ServiceVersion:
    """globex's active service version `globex/llama-host@1.0.0`."""
    return make_version(
        consumer,
        "llama-host",
        price_input_per_mtok="0.50",
        price_output_per_mtok="1.50",
        context_length=32768,
        data_residency=["DE", "FR"],
        gdpr_compliant=True,
        compliance_level="internal",
        capabilities=[{"name": "chat", "parameters": {"temperature": {}, "max_tokens": {}}}],
    )


def offer(user: Any, version: ServiceVersion, **body: Any) -> Any:
    return client_for(user).post(
        f"{API}/acme--support-llama/offers/", {"service_version": str(version.pk), **body}, format="json"
    )


def test_another_provider_offers_an_open_model_and_the_list_shows_prices_and_health(
    model: CatalogModel, consumer: Tenant, hosted: ServiceVersion
) -> None:
    # given figures of the periodic SLA check
    cache.set(
        CACHE_PREFIX + str(hosted.pk),
        {"requests": 40, "availability": 97.5, "error_rate": 0.025, "p50_ms": 210.0, "p95_ms": 640.0},
    )

    # when
    created = offer(consumer.owner, hosted, model_version="1.0.0")
    listed = APIClient().get(f"{API}/acme--support-llama/offers/")

    # then
    assert created.status_code == 201, created.content
    assert created.json()["model_version"] == "1.0.0"
    assert listed.status_code == 200, listed.content
    body = listed.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["link_id"] == created.json()["link_id"]
    assert row["id"] == "globex/llama-host" and row["offer"] == "globex/llama-host@1.0.0"
    assert row["model"] == "acme/support-llama" and row["provider"] == "globex" and row["status"] == "active"
    assert row["prices"] == {
        "model": "per_token",
        "input_per_mtok": "0.5",
        "output_per_mtok": "1.5",
        "cached_input_per_mtok": None,
        "per_request": None,
    }
    assert row["context_length"] == 32768 and row["data_residency"] == ["DE", "FR"]
    assert row["compliance_level"] == "internal" and row["parameters"] == ["max_tokens", "temperature"]
    assert row["health"] == {
        "healthy": True,
        "breaker": "closed",
        "requests": 40,
        "availability": 97.5,
        "error_rate": 0.025,
        "p50_ms": 210.0,
        "p95_ms": 640.0,
        "throughput_tps": None,
    }


def test_without_a_version_the_latest_ready_one_is_offered(
    model: CatalogModel, consumer: Tenant, hosted: ServiceVersion
) -> None:
    # when
    created = offer(consumer.owner, hosted)

    # then
    assert created.status_code == 201, created.content
    assert created.json()["model_version"] == "1.1.0"


def test_a_model_closed_to_offers_refuses_another_provider(
    model: CatalogModel, consumer: Tenant, hosted: ServiceVersion
) -> None:
    # given
    CatalogModel.objects.filter(pk=model.pk).update(open_offers=False)

    # when
    response = offer(consumer.owner, hosted)

    # then
    assert_error(response, 400, "validation_error", field="model_version")
    assert not ServedBy.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service_version": "not-a-uuid"}, "service_version"),
        ({"service_version": "00000000-0000-0000-0000-000000000000"}, "service_version"),
        ({"model_version": "9.9.9"}, "model_version"),
        ({"model_version": ["1.0.0"]}, "model_version"),
        ({"price": "1"}, "price"),
    ],
)
def test_bad_offers_are_400s_naming_the_field(
    model: CatalogModel, consumer: Tenant, hosted: ServiceVersion, body: dict[str, Any], field: str
) -> None:
    # when
    response = offer(consumer.owner, hosted, **body)

    # then
    assert_error(response, 400, "validation_error", field=field)


def test_a_provider_cannot_offer_another_tenants_service_version(
    model: CatalogModel, provider: Tenant, hosted: ServiceVersion
) -> None:
    # when acme's owner offers globex's version
    response = offer(provider.owner, hosted)

    # then
    assert_error(response, 400, "validation_error", field="service_version")


def test_the_owner_and_the_provider_unlink_offers_a_stranger_cannot(
    model: CatalogModel, provider: Tenant, consumer: Tenant, hosted: ServiceVersion
) -> None:
    # given
    stranger = UserFactory(username="mallory")
    MembershipFactory(tenant=TenantFactory(slug="initech"), user=stranger, role=Role.OWNER)

    def link_url() -> str:
        return f"{API}/acme--support-llama/offers/{offer(consumer.owner, hosted).json()['link_id']}/"

    # when / then: a stranger is refused, anonymous callers too
    url = link_url()
    assert_error(client_for(stranger).delete(url), 403)
    assert APIClient().delete(url).status_code in (401, 403)
    assert ServedBy.objects.count() == 1
    # the model's owner unlinks another provider's offer
    assert client_for(provider.owner).delete(url).status_code == 204
    assert not ServedBy.objects.exists()
    assert_error(client_for(provider.owner).delete(url), 404)
    # the provider unlinks its own
    assert client_for(consumer.owner).delete(link_url()).status_code == 204
    assert not ServedBy.objects.exists()


def test_an_offer_that_cannot_be_called_is_shown_to_its_provider_and_the_owner_only(
    model: CatalogModel, provider: Tenant, consumer: Tenant, hosted: ServiceVersion
) -> None:
    # given
    assert offer(consumer.owner, hosted).status_code == 201
    ServiceVersion.objects.filter(pk=hosted.pk).update(status="suspended")
    stranger = UserFactory(username="mallory")
    MembershipFactory(tenant=TenantFactory(slug="initech"), user=stranger, role=Role.OWNER)

    def count(client: APIClient) -> int:
        response = client.get(f"{API}/acme--support-llama/offers/")
        assert response.status_code == 200, response.content
        return response.json()["count"]

    # then
    assert count(client_for(consumer.owner)) == 1
    assert count(client_for(provider.owner)) == 1
    assert count(client_for(stranger)) == 0
    assert count(APIClient()) == 0


def test_a_model_the_caller_cannot_see_is_a_404(provider: Tenant, consumer: Tenant, hosted: ServiceVersion) -> None:
    # given a private model of acme
    catalog.create_model(owner=provider, actor=provider.owner, slug="secret", values={"name": "Secret"})

    # when
    listed = client_for(consumer.owner).get(f"{API}/acme--secret/offers/")
    offered = client_for(consumer.owner).post(
        f"{API}/acme--secret/offers/", {"service_version": str(hosted.pk)}, format="json"
    )
    nonsense = APIClient().get(f"{API}/not-a-handle/offers/")

    # then
    assert_error(listed, 404)
    assert_error(offered, 404)
    assert_error(nonsense, 404)


def test_the_list_is_paginated(model: CatalogModel, consumer: Tenant) -> None:
    # given
    for slug in ("host-a", "host-b", "host-c"):
        assert offer(consumer.owner, make_version(consumer, slug)).status_code == 201

    # when
    page = APIClient().get(f"{API}/acme--support-llama/offers/?limit=2")

    # then
    body = page.json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]


def test_api_keys_read_offers_with_read_and_write_them_with_publish(
    model: CatalogModel, consumer: Tenant, hosted: ServiceVersion
) -> None:
    from apps.consumption.services import create_api_key

    def keyed(*scopes: str) -> APIClient:
        _, secret = create_api_key(tenant=consumer, actor=consumer.owner, name="-".join(scopes), scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
        return client

    url = f"{API}/acme--support-llama/offers/"
    body = {"service_version": str(hosted.pk)}
    assert keyed("consume").get(url).status_code == 403
    assert keyed("read").get(url).status_code == 200
    assert keyed("read").post(url, body, format="json").status_code == 403
    assert not ServedBy.objects.filter(service_version=hosted).exists()
    created = keyed("publish").post(url, body, format="json")
    assert created.status_code == 201, created.content
    assert keyed("read").delete(f"{url}{created.json()['link_id']}/").status_code == 403
    assert keyed("admin").delete(f"{url}{created.json()['link_id']}/").status_code == 204
