"""Services and catalog models share one namespace per tenant; a service definition's `serves` declares the catalog
models its version offers, checked on submission and linked when the version becomes active."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.catalog.models import CatalogModel, ModelStatus, ModelVersion
from apps.publishing.models import Service
from apps.tenancy.models import Tenant
from tests.apps.publishing.test_api import API, definition

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def alice(publisher: Tenant, publisher_admin: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(publisher_admin)
    return client


def catalog_model(owner: Tenant, slug: str, *, version: str = "1.0.0", **values: Any) -> CatalogModel:
    """A published public model with one ready version, written directly (the catalog's services are tested there)."""
    values.setdefault("open_offers", True)
    model = CatalogModel.objects.create(
        owner=owner, slug=slug, name=slug.title(), visibility="public", status=ModelStatus.PUBLISHED, **values
    )
    major, minor, patch = (int(part) for part in version.split("."))
    ModelVersion.objects.create(model=model, version=version, major=major, minor=minor, patch=patch, status="ready")
    return model


def test_a_service_slug_may_not_be_one_of_the_tenants_model_slugs(alice: APIClient, publisher: Tenant) -> None:
    # given
    catalog_model(publisher, "echo-chat")

    # when
    response = alice.post(API, definition(), format="json")

    # then
    assert response.status_code == 409, response.content
    assert response.json()["error"]["details"]["field"] == "slug"
    assert not Service.objects.exists()
