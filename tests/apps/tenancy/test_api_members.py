"""REST API of members: list, add, change role, remove, with role rules, quota and last-owner protection."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.tenancy.models import AuditLog, Membership, Role, Tier
from tests.apps.tenancy.api_support import API, World, assert_error, build_world, client_for, unregister_widgets
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def _member_url(world: World, membership: Membership, slug: str = "acme") -> str:
    return f"{API}/tenants/{slug}/members/{membership.pk}/"


def test_any_member_lists_the_members(world: World) -> None:
    # when
    response = client_for(world.viewer).get(f"{API}/tenants/acme/members/")

    # then
    assert response.status_code == 200
    rows = response.json()["results"]
    assert {row["user"]["username"] for row in rows} == {"alice", "acme-admin", "acme-member", "acme-viewer"}
    assert {row["role"] for row in rows} == set(Role.values)


def test_members_filter_by_role_and_refuse_an_unknown_role(world: World) -> None:
    # given
    client = client_for(world.member)

    # when
    admins = client.get(f"{API}/tenants/acme/members/", {"role": Role.ADMIN})
    refused = client.get(f"{API}/tenants/acme/members/", {"role": "king"})

    # then
    assert [row["user"]["username"] for row in admins.json()["results"]] == ["acme-admin"]
    assert_error(refused, 400, "validation_error", field="role")


def test_any_member_sees_one_member(world: World) -> None:
    # when
    response = client_for(world.viewer).get(_member_url(world, world.owner_membership))

    # then
    assert response.status_code == 200
    assert response.json() == {
        "id": str(world.owner_membership.pk),
        "user": {"username": "alice", "email": "alice@example.com"},
        "role": Role.OWNER,
        "created_at": response.json()["created_at"],
    }


def test_admins_add_a_member_by_username(world: World) -> None:
    # given
    UserFactory(username="dave")

    # when
    response = client_for(world.admin).post(
        f"{API}/tenants/acme/members/", {"username": "dave", "role": Role.MEMBER}, format="json"
    )

    # then
    assert response.status_code == 201, response.content
    assert response.json()["user"]["username"] == "dave"
    assert Membership.objects.get(tenant=world.acme, user__username="dave").role == Role.MEMBER
    assert AuditLog.objects.filter(tenant=world.acme, action="member_added").exists()


def test_admins_add_a_member_by_email_with_the_default_role(world: World) -> None:
    # given
    UserFactory(username="erin", email="Erin@Example.com")

    # when
    response = client_for(world.admin).post(
        f"{API}/tenants/acme/members/", {"email": "erin@example.com"}, format="json"
    )

    # then
    assert response.status_code == 201, response.content
    assert response.json()["role"] == Role.MEMBER


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_below_admin_cannot_add_members(world: World, role: str) -> None:
    # given
    UserFactory(username="dave")

    # when
    response = client_for(getattr(world, role)).post(
        f"{API}/tenants/acme/members/", {"username": "dave"}, format="json"
    )

    # then
    assert_error(response, 403)
    assert not Membership.objects.filter(user__username="dave").exists()


def test_only_owners_add_owners(world: World) -> None:
    # given
    UserFactory(username="dave")

    # when
    response = client_for(world.admin).post(
        f"{API}/tenants/acme/members/", {"username": "dave", "role": Role.OWNER}, format="json"
    )

    # then
    assert_error(response, 403)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "username"),
        ({"role": Role.MEMBER}, "username"),
        ({"username": "dave", "role": "king"}, "role"),
        ({"email": "not-an-email"}, "email"),
        ({"username": "dave", "user_id": 1}, "user_id"),
    ],
)
def test_adding_refuses_bad_input_naming_the_field(world: World, payload: dict, field: str) -> None:
    # given
    UserFactory(username="dave")
    before = Membership.objects.count()

    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/members/", payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    assert Membership.objects.count() == before


def test_adding_an_unknown_user_is_404_naming_the_user(world: World) -> None:
    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/members/", {"username": "ghost"}, format="json")

    # then
    body = assert_error(response, 404, "not_found")
    assert body["error"]["details"] == {"resource": "User", "id": "ghost"}


def test_adding_a_member_twice_conflicts(world: World) -> None:
    # when
    response = client_for(world.owner).post(f"{API}/tenants/acme/members/", {"username": "acme-viewer"}, format="json")

    # then
    assert_error(response, 409, "conflict")


def test_the_members_quota_of_the_tier_is_enforced(db) -> None:
    # given: the free tier allows 3 members
    tenant = TenantFactory(slug="tiny", tier=Tier.FREE)
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    MembershipFactory.create_batch(2, tenant=tenant)
    UserFactory(username="fourth")

    # when
    response = client_for(owner).post(f"{API}/tenants/tiny/members/", {"username": "fourth"}, format="json")

    # then
    body = assert_error(response, 402, "quota_exceeded")
    assert body["error"]["details"]["quota"] == "members"
    assert Membership.objects.filter(tenant=tenant).count() == 3


def test_admins_change_a_role(world: World) -> None:
    # when
    response = client_for(world.admin).patch(
        _member_url(world, world.member_membership), {"role": Role.VIEWER}, format="json"
    )

    # then
    assert response.status_code == 200, response.content
    assert response.json()["role"] == Role.VIEWER
    entry = AuditLog.objects.get(tenant=world.acme, action="member_role_changed")
    assert (entry.before, entry.after) == ({"role": Role.MEMBER}, {"role": Role.VIEWER})


def test_members_cannot_change_roles(world: World) -> None:
    # when
    response = client_for(world.member).patch(
        _member_url(world, world.member_membership), {"role": Role.ADMIN}, format="json"
    )

    # then
    assert_error(response, 403)
    world.member_membership.refresh_from_db()
    assert world.member_membership.role == Role.MEMBER


def test_admins_cannot_demote_an_owner(world: World) -> None:
    # when
    response = client_for(world.admin).patch(
        _member_url(world, world.owner_membership), {"role": Role.VIEWER}, format="json"
    )

    # then
    assert_error(response, 403)


def test_the_last_owner_cannot_be_demoted(world: World) -> None:
    # when
    response = client_for(world.owner).patch(
        _member_url(world, world.owner_membership), {"role": Role.ADMIN}, format="json"
    )

    # then
    assert_error(response, 422, "last_owner")
    world.owner_membership.refresh_from_db()
    assert world.owner_membership.role == Role.OWNER


@pytest.mark.parametrize(("payload", "field"), [({"role": "king"}, "role"), ({}, "role"), ({"user": "x"}, "user")])
def test_role_changes_refuse_bad_input(world: World, payload: dict, field: str) -> None:
    # when
    response = client_for(world.owner).patch(_member_url(world, world.member_membership), payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)


def test_admins_remove_a_member(world: World) -> None:
    # when
    response = client_for(world.admin).delete(_member_url(world, world.member_membership))

    # then
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=world.member_membership.pk).exists()
    assert AuditLog.objects.filter(tenant=world.acme, action="member_removed").exists()


def test_a_member_removes_itself(world: World) -> None:
    # given
    viewer_membership = Membership.objects.get(tenant=world.acme, user=world.viewer)

    # when
    response = client_for(world.viewer).delete(_member_url(world, viewer_membership))

    # then
    assert response.status_code == 204
    assert not Membership.objects.filter(pk=viewer_membership.pk).exists()


def test_a_member_cannot_remove_another(world: World) -> None:
    # given
    viewer_membership = Membership.objects.get(tenant=world.acme, user=world.viewer)

    # when
    response = client_for(world.member).delete(_member_url(world, viewer_membership))

    # then
    assert_error(response, 403)
    assert Membership.objects.filter(pk=viewer_membership.pk).exists()


def test_the_last_owner_cannot_leave(world: World) -> None:
    # when
    response = client_for(world.owner).delete(_member_url(world, world.owner_membership))

    # then
    assert_error(response, 422, "last_owner")
    assert Membership.objects.filter(pk=world.owner_membership.pk).exists()


def test_an_unknown_member_id_is_404(world: World) -> None:
    # when
    response = client_for(world.owner).get(f"{API}/tenants/acme/members/00000000-0000-0000-0000-000000000000/")
    not_a_uuid = client_for(world.owner).get(f"{API}/tenants/acme/members/42/", HTTP_ACCEPT="application/json")

    # then
    assert_error(response, 404, "not_found")
    assert_error(not_a_uuid, 404, "not_found")
