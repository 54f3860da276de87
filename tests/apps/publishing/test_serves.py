"""Services and catalog models share one namespace per tenant; a service definition's `serves` declares the catalog
models its version offers, checked on submission and linked when the version becomes active."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from apps.catalog.models import CatalogModel, ModelStatus, ModelVersion, ServedBy
from apps.publishing.models import Service, ValidationStep
from apps.tenancy.models import Tenant
from tests.apps.gateway.support import gql
from tests.apps.publishing.test_api import API, definition
from tests.apps.tenancy.api_support import assert_error
from tests.apps.tenancy.factories import TenantFactory

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


@pytest.fixture
def globex(db: Any) -> Tenant:
    """Another tenant, owner of the catalog models acme's services offer."""
    return TenantFactory(slug="globex")


def test_serves_links_the_active_version_to_the_models_it_names(
    alice: APIClient, publisher: Tenant, globex: Tenant
) -> None:
    # given
    catalog_model(globex, "llama", version="1.2.0")

    # when
    response = alice.post(API, definition(serves=["globex/llama"]), format="json")

    # then
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["version"]["status"] == "active" and body["version"]["serves"] == ["globex/llama"]
    link = ServedBy.objects.select_related("model_version").get()
    assert str(link.service_version_id) == body["version"]["id"] and link.model_version.version == "1.2.0"
    step = ValidationStep.objects.get(name="serves")
    assert step.outcome == "passed" and step.messages[0]["message"] == "Offers globex/llama@1.2.0."


@pytest.mark.parametrize(
    ("serves", "field"),
    [
        (["globex/llama", "not a model"], "serves[1]"),
        (["globex/llama", "globex/llama"], "serves[1]"),
        ("globex/llama", "serves"),
        ([7], "serves[0]"),
        (["globex/closed"], "serves[0]"),
        (["globex/llama@9.0.0"], "serves[0]"),
        (["globex/nothing"], "serves[0]"),
    ],
)
def test_serves_is_checked_on_submission(
    alice: APIClient, publisher: Tenant, globex: Tenant, serves: Any, field: str
) -> None:
    # given
    catalog_model(globex, "llama")
    catalog_model(globex, "closed", open_offers=False)

    # when
    response = alice.post(API, definition(serves=serves), format="json")

    # then
    assert_error(response, 400, field=field)
    assert not Service.objects.exists()


def test_dry_run_reports_a_refused_model(alice: APIClient, publisher: Tenant, globex: Tenant) -> None:
    # given
    catalog_model(globex, "closed", open_offers=False)

    # when
    response = alice.post(f"{API}validate/", definition(serves=["globex/closed"]), format="json")

    # then
    assert response.status_code == 200, response.content
    schema = response.json()["steps"][0]
    assert schema["outcome"] == "failed"
    assert [m["field"] for m in schema["messages"] if m["code"] == "SERVES_REFUSED"] == ["serves[0]"]


def test_a_model_closed_before_activation_is_reported_not_linked(
    alice: APIClient, publisher: Tenant, globex: Tenant, staff: Any
) -> None:
    # given a version waiting for approval that serves an open model
    Tenant.objects.filter(pk=publisher.pk).update(trusted_publisher=False)
    model = catalog_model(globex, "llama")
    body = alice.post(API, definition(serves=["globex/llama"]), format="json").json()
    assert body["version"]["status"] == "pending_approval"
    CatalogModel.objects.filter(pk=model.pk).update(open_offers=False)
    operator = APIClient()
    operator.force_authenticate(staff)

    # when
    approved = operator.post(f"{API}{body['service']['id']}/approve/", {}, format="json")

    # then the version is active, the refusal recorded in its validation report
    assert approved.status_code == 200, approved.content
    assert not ServedBy.objects.exists()
    step = ValidationStep.objects.get(name="serves")
    assert step.outcome == "failed" and step.messages[0]["field"] == "serves[0]"


def test_graphql_publishes_a_definition_with_serves(publisher: Tenant, publisher_admin: Any, globex: Tenant) -> None:
    # given
    catalog_model(globex, "llama")
    body = definition(serves=["globex/llama"])

    # when
    client = Client()
    client.force_login(publisher_admin)
    result = gql(
        client,
        "mutation($d: GenericScalar!) { servicePublish(definition: $d) { version { serves status } errors { field } } "
        "}",
        {"d": body},
    ).json()

    # then
    assert result["data"]["servicePublish"] == {
        "version": {"serves": ["globex/llama"], "status": "active"},
        "errors": [],
    }
    assert ServedBy.objects.count() == 1
