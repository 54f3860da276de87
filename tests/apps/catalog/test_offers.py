"""Offers of catalog models: who may offer a model (open offers), who may unlink an offer, one namespace for model and
service slugs, the early check of a service definition's `serves`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.catalog.models import CatalogModel, ServedBy
from apps.catalog.services import offers
from apps.tenancy.models import AuditLog, Role, Tenant
from llm_infra_django.errors import AuthorizationError, ValidationError
from tests.apps.publishing.test_discovery import make_version as make_service_version
from tests.apps.tenancy.api_support import client_for
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def model(published: Any) -> CatalogModel:
    """acme's public model `acme/support-llama@1.0.0` (apache-2.0: open to offers by default)."""
    return published("support-llama", license="apache-2.0")


def test_a_model_whose_license_allows_commercial_use_is_open_to_offers(model: CatalogModel, make_model: Any) -> None:
    # when
    closed = make_model("research-only", license="cc-by-nc-4.0")

    # then
    assert model.open_offers is True
    assert closed.open_offers is False


def test_another_tenant_offers_an_open_model(model: CatalogModel, globex: Tenant, bob: Any) -> None:
    # given
    service_version = make_service_version(globex, "llama-host")
    version = offers.find_model_version("acme/support-llama")

    # when
    link = offers.offer_model(provider=globex, actor=bob, model_version=version, service_version=service_version)
    again = offers.offer_model(provider=globex, actor=bob, model_version=version, service_version=service_version)

    # then
    assert link.pk == again.pk
    assert ServedBy.objects.filter(model_version=version).count() == 1


def test_a_model_closed_to_offers_refuses_other_providers(
    model: CatalogModel, acme: Tenant, alice: Any, globex: Tenant, bob: Any
) -> None:
    # given
    CatalogModel.objects.filter(pk=model.pk).update(open_offers=False)
    version = offers.find_model_version("acme/support-llama@1.0.0")

    # when
    with pytest.raises(ValidationError) as refused:
        offers.offer_model(
            provider=globex,
            actor=bob,
            model_version=version,
            service_version=make_service_version(globex, "llama-host"),
        )
    own = offers.offer_model(
        provider=acme, actor=alice, model_version=version, service_version=make_service_version(acme, "own-host")
    )

    # then the owner still may
    assert "serves" in refused.value.details["fields"]
    assert own.pk is not None


def test_the_owner_and_the_provider_may_unlink_a_stranger_may_not(
    model: CatalogModel, alice: Any, globex: Tenant, bob: Any
) -> None:
    # given
    version = offers.find_model_version("acme/support-llama")
    stranger = UserFactory(username="mallory")
    MembershipFactory(tenant=TenantFactory(slug="initech"), user=stranger, role=Role.OWNER)
    service_version = make_service_version(globex, "llama-host")

    def link() -> ServedBy:
        return offers.offer_model(provider=globex, actor=bob, model_version=version, service_version=service_version)

    # when / then
    with pytest.raises(AuthorizationError):
        offers.unlink_offer(link=link(), actor=stranger)
    offers.unlink_offer(link=link(), actor=alice)
    assert not ServedBy.objects.exists()
    offers.unlink_offer(link=link(), actor=bob)
    assert not ServedBy.objects.exists()


def test_serves_issues_name_each_refused_reference(
    model: CatalogModel, make_model: Any, make_version: Any, globex: Tenant
) -> None:
    # given
    make_model("closed", license="cc-by-nc-4.0", visibility="public")
    draft = make_model("draft", license="apache-2.0", visibility="public")
    make_version(draft)

    # when
    issues = offers.serves_issues(
        provider=globex,
        refs=["acme/support-llama", "acme/support-llama@9.9.9", "acme/closed", "not a ref", "acme/draft"],
    )

    # then
    assert set(issues) == {"serves[1]", "serves[2]", "serves[3]", "serves[4]"}


def test_a_model_slug_may_not_be_one_of_the_tenants_service_slugs(acme: Tenant, alice: Any) -> None:
    # given
    make_service_version(acme, "support-llama")

    # when
    response = client_for(alice).post(
        f"{API}/models/", {"slug": "support-llama", "name": "Support Llama"}, format="json"
    )

    # then
    assert response.status_code == 409, response.content
    assert response.json()["error"]["details"]["field"] == "slug"


# --- Admin ---------------------------------------------------------------------------------------------------


def admin_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def offered(model: CatalogModel, globex: Tenant, bob: Any) -> ServedBy:
    """globex's `globex/llama-host@1.0.0` offers acme's model."""
    return offers.offer_model(
        provider=globex,
        actor=bob,
        model_version=offers.find_model_version("acme/support-llama"),
        service_version=make_service_version(globex, "llama-host"),
    )


def test_the_model_admin_page_lists_its_offers_and_edits_open_offers(
    model: CatalogModel, offered: ServedBy, alice: Any
) -> None:
    # when
    page = admin_client(alice).get(reverse("admin:catalog_catalogmodel_change", args=[model.pk]))

    # then
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="open_offers"' in html
    assert "globex/llama-host@1.0.0" in html and "globex" in html
    assert reverse("admin:catalog_servedby_delete", args=[offered.pk]) in html


def test_the_owner_and_the_provider_see_and_unlink_offers_in_the_admin(
    model: CatalogModel, offered: ServedBy, alice: Any, bob: Any
) -> None:
    # given
    stranger = UserFactory(username="mallory")
    MembershipFactory(tenant=TenantFactory(slug="initech"), user=stranger, role=Role.OWNER)
    delete_url = reverse("admin:catalog_servedby_delete", args=[offered.pk])

    # when
    providers_list = admin_client(bob).get(reverse("admin:catalog_servedby_changelist"))
    strangers_view = admin_client(stranger).get(delete_url)
    unlinked = admin_client(alice).post(delete_url, {"post": "yes"})

    # then
    assert providers_list.status_code == 200 and "globex/llama-host@1.0.0" in providers_list.content.decode()
    assert strangers_view.status_code == 404
    assert unlinked.status_code == 302
    assert not ServedBy.objects.exists()
    assert AuditLog.objects.filter(action="catalog_offer_removed", tenant__slug="acme").exists()


def test_open_offers_is_set_through_the_api(model: CatalogModel, alice: Any) -> None:
    # when
    response = client_for(alice).patch(f"{API}/models/acme--support-llama/", {"open_offers": False}, format="json")

    # then
    assert response.status_code == 200, response.content
    assert response.json()["open_offers"] is False
    model.refresh_from_db()
    assert model.open_offers is False
