"""Tenant-scoped admin pages of the catalog: scoping, saves through the services, the lineage picture."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from apps.catalog import services
from apps.catalog.models import CatalogModel, Dataset
from apps.tenancy.models import AuditLog, Tenant

pytestmark = pytest.mark.django_db


def admin_client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def models(acme: Tenant, alice: Any, globex: Tenant, bob: Any, published: Any, make_model: Any) -> dict[str, Any]:
    ours = published(base_model_name="Llama-3-8B", visibility="private")
    theirs = make_model("rival", owner=globex, actor=bob)
    return {"ours": ours, "theirs": theirs}


def test_a_tenant_admin_sees_only_its_tenants_models(models: dict[str, Any], alice: Any) -> None:
    # when
    client = admin_client(alice)
    listing = client.get(reverse("admin:catalog_catalogmodel_changelist"))
    foreign = client.get(reverse("admin:catalog_catalogmodel_change", args=[models["theirs"].pk]))
    foreign_lineage = client.get(reverse("admin:catalog_catalogmodel_lineage", args=[models["theirs"].pk]))

    # then
    assert listing.status_code == 200
    assert b"acme--support-llama" in listing.content and b"globex--rival" not in listing.content
    assert foreign.status_code == 404
    assert foreign_lineage.status_code == 404


def test_the_change_page_and_the_lineage_page_draw_the_graph(models: dict[str, Any], alice: Any, acme: Tenant) -> None:
    # given a dataset whose name would be markup
    dataset = services.create_dataset(
        owner=acme, actor=alice, slug="evil", values={"name": "<script>alert(1)</script>"}
    )
    services.add_lineage_edge(
        owner=acme,
        actor=alice,
        source={"kind": "model_version", "ref": "acme--support-llama@1.0.0"},
        target={"kind": "dataset", "ref": str(dataset.pk)},
        edge_type="trained_on",
    )
    client = admin_client(alice)

    # when
    change = client.get(reverse("admin:catalog_catalogmodel_change", args=[models["ours"].pk]))
    page = client.get(reverse("admin:catalog_catalogmodel_lineage", args=[models["ours"].pk]) + "?depth=3")
    bad_depth = client.get(reverse("admin:catalog_catalogmodel_lineage", args=[models["ours"].pk]) + "?depth=x")

    # then the SVG is inline, labels are escaped, and no script or external resource is involved
    for response in (change, page):
        assert response.status_code == 200
        html = response.content.decode()
        assert "<svg" in html and "Llama-3-8B" in html
        assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "Checks of acme" in page.content.decode()
    assert bad_depth.status_code == 200


def test_adding_a_model_in_the_admin_goes_through_the_service(acme: Tenant, alice: Any) -> None:
    # when
    response = admin_client(alice).post(
        reverse("admin:catalog_catalogmodel_add"),
        {
            "owner": str(acme.pk),
            "slug": "from-admin",
            "name": "From admin",
            "description": "",
            "model_type": "fine_tuned",
            "category": "chat",
            "tags": "a, b",
            "languages": "en",
            "license": "apache-2.0",
            "commercial_use": "on",
            "visibility": "private",
        },
    )

    # then
    assert response.status_code == 302, response.content.decode()[:2000]
    model = CatalogModel.objects.get(slug="from-admin")
    assert model.tags == ["a", "b"] and model.commercial_use is True
    assert AuditLog.objects.filter(action="catalog_model_created", object_id=str(model.pk)).exists()


def test_a_service_refusal_in_the_admin_is_a_message_not_an_error(models: dict[str, Any], alice: Any) -> None:
    # when publishing → draft is attempted (not an allowed transition)
    model = models["ours"]
    response = admin_client(alice).post(
        reverse("admin:catalog_catalogmodel_change", args=[model.pk]),
        {
            "name": model.name,
            "description": "",
            "base_model_name": model.base_model_name,
            "model_type": model.model_type,
            "category": model.category,
            "tags": "",
            "languages": "",
            "license": "",
            "visibility": model.visibility,
            "status": "draft",
        },
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert "cannot become draft" in response.content.decode()
    assert CatalogModel.objects.get(pk=model.pk).status == "published"


def test_a_tenant_admin_cannot_pick_another_tenant_as_owner(acme: Tenant, alice: Any, globex: Tenant) -> None:
    # when
    response = admin_client(alice).post(
        reverse("admin:catalog_dataset_add"),
        {
            "owner": str(globex.pk),
            "slug": "sneaky",
            "name": "Sneaky",
            "visibility": "private",
            "sources": "[]",
            "certifications": "",
        },
    )

    # then the form refuses the choice
    assert response.status_code == 200
    assert not Dataset.objects.filter(slug="sneaky").exists()


def test_the_other_catalog_pages_are_scoped(models: dict[str, Any], alice: Any) -> None:
    client = admin_client(alice)
    for name in ("modelversion", "dataset", "trainingrun", "evaluation", "lineagenode", "lineageedge"):
        assert client.get(reverse(f"admin:catalog_{name}_changelist")).status_code == 200
    theirs = models["theirs"]
    version = services.create_version(
        model=theirs, actor=theirs.owner.memberships.get().user, version="1.0.0", values={}
    )
    assert client.get(reverse("admin:catalog_modelversion_change", args=[version.pk])).status_code == 404
