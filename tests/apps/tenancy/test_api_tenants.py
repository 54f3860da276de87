"""REST API of tenants: list, create, show, profile, tier and status changes, with their role checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.tenancy.models import AuditLog, Membership, Role, Tenant, TenantStatus, Tier
from tests.apps.tenancy.api_support import API, World, assert_error, build_world, client_for, slugs, unregister_widgets
from tests.apps.tenancy.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


# --- List and create -----------------------------------------------------------------------------------------


def test_list_shows_the_callers_tenants_with_its_role(world: World) -> None:
    # given
    client = client_for(world.viewer)

    # when
    response = client.get(f"{API}/tenants/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0]["slug"] == "acme"
    assert body["results"][0]["role"] == Role.VIEWER
    assert body["results"][0]["member_count"] == 4


def test_superusers_list_every_tenant(world: World) -> None:
    # given
    root = UserFactory(username="root", is_staff=True, is_superuser=True)

    # when
    response = client_for(root).get(f"{API}/tenants/")

    # then
    assert slugs(response) == {"acme", "globex", "initech"}


def test_list_filters_by_tier_and_refuses_an_unknown_tier(world: World) -> None:
    # given
    Tenant.objects.filter(slug="globex").update(tier=Tier.STARTER)
    root = UserFactory(username="root", is_superuser=True)
    client = client_for(root)

    # when
    filtered = client.get(f"{API}/tenants/", {"tier": Tier.STARTER})
    refused = client.get(f"{API}/tenants/", {"tier": "platinum"})

    # then
    assert slugs(filtered) == {"globex"}
    assert_error(refused, 400, "validation_error", field="tier")


def test_list_is_paginated(world: World) -> None:
    # given
    root = UserFactory(username="root", is_superuser=True)

    # when
    response = client_for(root).get(f"{API}/tenants/", {"limit": 2, "offset": 1})

    # then
    body = response.json()
    assert body["count"] == 3
    assert [row["slug"] for row in body["results"]] == ["globex", "initech"]
    assert body["previous"] is not None and body["next"] is None


def test_create_makes_the_caller_owner(world: World) -> None:
    # given
    newcomer = UserFactory(username="newcomer")
    payload = {"name": "Hooli", "slug": "hooli", "tier": Tier.STARTER, "timezone": "Europe/Paris", "currency": "EUR"}

    # when
    response = client_for(newcomer).post(f"{API}/tenants/", payload, format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["slug"] == "hooli" and body["tier"] == Tier.STARTER and body["timezone"] == "Europe/Paris"
    assert body["status"] == TenantStatus.TRIAL
    assert body["role"] == Role.OWNER and body["member_count"] == 1
    assert Membership.objects.get(tenant__slug="hooli", user=newcomer).role == Role.OWNER
    assert AuditLog.objects.filter(tenant__slug="hooli", action="tenant_created").exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "Bad", "slug": "Not A Slug"}, "slug"),
        ({"name": "Bad", "slug": "admin"}, "slug"),
        ({"slug": "no-name"}, "name"),
        ({"name": "Bad", "slug": "bad-zone", "timezone": "Mars/Base"}, "timezone"),
        ({"name": "Bad", "slug": "bad-currency", "currency": "usd"}, "currency"),
        ({"name": "Bad", "slug": "bad-tier", "tier": "platinum"}, "tier"),
        ({"name": "Bad", "slug": "bad-field", "status": "active"}, "status"),
        ({"name": ["x"], "slug": "bad-name"}, "name"),
    ],
)
def test_create_refuses_bad_input_naming_the_field(world: World, payload: dict, field: str) -> None:
    # given
    client = client_for(world.bob)
    before = Tenant.objects.count()

    # when
    response = client.post(f"{API}/tenants/", payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    assert Tenant.objects.count() == before


def test_create_with_a_taken_slug_conflicts(world: World) -> None:
    # when
    response = client_for(world.bob).post(f"{API}/tenants/", {"name": "Again", "slug": "acme"}, format="json")

    # then
    assert_error(response, 409, "conflict")


@pytest.mark.parametrize("body", [[1, 2], "text", 42])
def test_create_refuses_a_body_that_is_not_an_object(world: World, body: object) -> None:
    # when
    response = client_for(world.bob).post(f"{API}/tenants/", body, format="json")

    # then
    assert_error(response, 400, "validation_error")


def test_create_refuses_malformed_json(world: World) -> None:
    # when
    response = client_for(world.bob).post(f"{API}/tenants/", "{not json", content_type="application/json")

    # then
    assert_error(response, 400)


# --- Show and change the profile -----------------------------------------------------------------------------


def test_any_member_sees_the_tenant(world: World) -> None:
    # when
    response = client_for(world.viewer).get(f"{API}/tenants/acme/")

    # then
    assert response.status_code == 200
    assert response.json()["id"] == str(world.acme.pk)


def test_a_non_member_gets_404_and_an_unknown_slug_the_same(world: World) -> None:
    # given
    client = client_for(world.bob)

    # when
    hidden = client.get(f"{API}/tenants/acme/")
    missing = client.get(f"{API}/tenants/no-such-tenant/")

    # then
    assert_error(hidden, 404, "not_found")
    assert_error(missing, 404, "not_found")
    assert hidden.json()["error"]["message"] == missing.json()["error"]["message"].replace("no-such-tenant", "acme")


def test_admins_change_the_profile(world: World) -> None:
    # when
    response = client_for(world.admin).patch(
        f"{API}/tenants/acme/", {"name": "Acme Corp", "region": "eu-west", "timezone": "Europe/Paris"}, format="json"
    )

    # then
    assert response.status_code == 200, response.content
    world.acme.refresh_from_db()
    assert (world.acme.name, world.acme.region, world.acme.timezone) == ("Acme Corp", "eu-west", "Europe/Paris")
    entry = AuditLog.objects.get(tenant=world.acme, action="tenant_updated")
    assert entry.after == {"name": "Acme Corp", "region": "eu-west", "timezone": "Europe/Paris"}


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_below_admin_cannot_change_the_profile(world: World, role: str) -> None:
    # when
    response = client_for(getattr(world, role)).patch(f"{API}/tenants/acme/", {"name": "Hijacked"}, format="json")

    # then
    assert_error(response, 403, "authorization_error")
    world.acme.refresh_from_db()
    assert world.acme.name == "Acme"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"tier": Tier.ENTERPRISE}, "tier"),
        ({"slug": "renamed"}, "slug"),
        ({"currency": "dollars"}, "currency"),
        ({"timezone": "Nowhere/Land"}, "timezone"),
        ({"name": ""}, "name"),
        ({}, "non_field_errors"),
    ],
)
def test_profile_changes_refuse_bad_input_naming_the_field(world: World, payload: dict, field: str) -> None:
    # when
    response = client_for(world.owner).patch(f"{API}/tenants/acme/", payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    world.acme.refresh_from_db()
    assert (world.acme.tier, world.acme.slug, world.acme.currency) == (Tier.PROFESSIONAL, "acme", "USD")


def test_put_is_not_a_route_of_the_tenant(world: World) -> None:
    # when
    response = client_for(world.owner).put(f"{API}/tenants/acme/", {"name": "X"}, format="json")

    # then
    assert_error(response, 405, "method_not_allowed")


# --- Tier and status -----------------------------------------------------------------------------------------


def test_owners_change_the_tier(world: World) -> None:
    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/tier/", {"tier": Tier.ENTERPRISE}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["tier"] == Tier.ENTERPRISE
    assert AuditLog.objects.filter(tenant=world.acme, action="tenant_tier_changed").exists()


def test_admins_cannot_change_the_tier(world: World) -> None:
    # when
    response = client_for(world.admin).post(f"{API}/tenants/acme/tier/", {"tier": Tier.FREE}, format="json")

    # then
    assert_error(response, 403)
    world.acme.refresh_from_db()
    assert world.acme.tier == Tier.PROFESSIONAL


@pytest.mark.parametrize("payload", [{"tier": "platinum"}, {}, {"tier": Tier.FREE, "extra": 1}])
def test_tier_change_refuses_bad_input(world: World, payload: dict) -> None:
    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/tier/", payload, format="json")

    # then
    body = assert_error(response, 400, "validation_error")
    assert set(body["error"]["details"]["fields"]) & {"tier", "extra"}


def test_staff_suspend_and_reactivate_a_tenant_they_do_not_belong_to(world: World) -> None:
    # given
    client = client_for(world.staff)

    # when
    suspended = client.post(f"{API}/tenants/acme/suspend/", {"reason": "unpaid invoices"}, format="json")
    reactivated = client.post(f"{API}/tenants/acme/reactivate/")

    # then
    assert suspended.status_code == 200, suspended.content
    assert suspended.json()["status"] == TenantStatus.SUSPENDED
    assert suspended.json()["suspension_reason"] == "unpaid invoices"
    assert reactivated.status_code == 200
    assert reactivated.json()["status"] == TenantStatus.ACTIVE
    actions = set(AuditLog.objects.filter(tenant=world.acme).values_list("action", flat=True))
    assert {"tenant_suspended", "tenant_reactivated"} <= actions


def test_staff_must_say_why_they_suspend(world: World) -> None:
    # when
    response = client_for(world.staff).post(f"{API}/tenants/acme/suspend/", {"reason": ""}, format="json")

    # then
    assert_error(response, 400, "validation_error", field="reason")
    world.acme.refresh_from_db()
    assert world.acme.status == TenantStatus.ACTIVE


def test_suspending_twice_is_an_invalid_transition(world: World) -> None:
    # given
    client = client_for(world.staff)
    client.post(f"{API}/tenants/acme/suspend/", {"reason": "abuse"}, format="json")

    # when
    response = client.post(f"{API}/tenants/acme/suspend/", {"reason": "again"}, format="json")

    # then
    body = assert_error(response, 409, "invalid_transition")
    assert body["error"]["details"]["current"] == TenantStatus.SUSPENDED


@pytest.mark.parametrize("action", ["suspend", "reactivate"])
def test_owners_cannot_suspend_or_reactivate(world: World, action: str) -> None:
    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/{action}/", {"reason": "mine"}, format="json")

    # then
    assert_error(response, 403)


def test_staff_get_404_for_a_tenant_that_does_not_exist(world: World) -> None:
    # when
    response = client_for(world.staff).post(f"{API}/tenants/nowhere/suspend/", {"reason": "x"}, format="json")

    # then
    assert_error(response, 404, "not_found")


def test_owners_deactivate_their_tenant_for_good(world: World) -> None:
    # given
    client = client_for(world.owner)

    # when
    deactivated = client.post(f"{API}/tenants/acme/deactivate/")
    again = client.post(f"{API}/tenants/acme/deactivate/")

    # then
    assert deactivated.status_code == 200
    assert deactivated.json()["status"] == TenantStatus.DEACTIVATED
    assert_error(again, 409, "invalid_transition")


def test_staff_deactivate_a_tenant_and_admins_cannot(world: World) -> None:
    # when
    refused = client_for(world.admin).post(f"{API}/tenants/acme/deactivate/")
    done = client_for(world.staff).post(f"{API}/tenants/acme/deactivate/")

    # then
    assert_error(refused, 403)
    assert done.status_code == 200
    assert done.json()["status"] == TenantStatus.DEACTIVATED
