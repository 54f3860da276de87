"""API-key callers of the tenancy REST API: confined to the key's tenant, reading with any scope, writing with `admin`.

The key is a stand-in with the attributes tenancy relies on (`tenant_id`, `scopes`), so these tests do not depend
on the app that issues keys.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.tenancy.models import Role, Tenant
from tests.apps.tenancy.api_support import API, World, assert_error, build_world, unregister_widgets
from tests.apps.tenancy.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class FakeKey:
    tenant_id: Any
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class RuledKey(FakeKey):
    """A key with its own rule of which scopes imply others (here: `root` implies every scope)."""

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "root" in self.scopes


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def key_client(user: Any, tenant: Tenant, *scopes: str, header: str | None = None) -> APIClient:
    """A client authenticated as an API key of `tenant` acting for `user` (its creator)."""
    client = APIClient()
    client.force_authenticate(user=user, token=FakeKey(tenant_id=tenant.pk, scopes=scopes))
    if header is not None:
        client.credentials(HTTP_X_TENANT=header)
    return client


def test_a_key_lists_only_its_own_tenant(world: World) -> None:
    # given: the key's creator also belongs to another tenant
    MembershipFactory(tenant=world.initech, user=world.owner, role=Role.OWNER)

    # when
    response = key_client(world.owner, world.acme, "read").get(f"{API}/tenants/")

    # then
    assert response.status_code == 200
    assert [row["slug"] for row in response.json()["results"]] == ["acme"]


def test_a_key_sees_its_tenant_and_nothing_else(world: World) -> None:
    # given
    MembershipFactory(tenant=world.initech, user=world.owner, role=Role.OWNER)
    client = key_client(world.owner, world.acme, "read")

    # when
    own = client.get(f"{API}/tenants/acme/members/")
    creators_other_tenant = client.get(f"{API}/tenants/initech/")
    other_policies = key_client(world.owner, world.initech, "read").get(f"{API}/sharing/policies/")

    # then
    assert own.status_code == 200 and own.json()["count"] == 4
    assert_error(creators_other_tenant, 404, "not_found")
    assert other_policies.json()["count"] == 0


def test_a_key_without_the_admin_scope_cannot_write(world: World) -> None:
    # given
    client = key_client(world.owner, world.acme, "read", "publish")

    # when
    patched = client.patch(f"{API}/tenants/acme/", {"name": "Renamed"}, format="json")
    shared = client.post(f"{API}/sharing/policies/", {"resource_type": "widget", "resource_id": "acme:w9"})

    # then
    body = assert_error(patched, 403, "authorization_error")
    assert "admin" in body["error"]["message"]
    assert_error(shared, 403)
    world.acme.refresh_from_db()
    assert world.acme.name == "Acme"


def test_an_admin_key_writes_with_its_creators_role(world: World) -> None:
    # when
    by_owner = key_client(world.owner, world.acme, "admin").patch(
        f"{API}/tenants/acme/", {"name": "Renamed"}, format="json"
    )
    by_viewer = key_client(world.viewer, world.acme, "admin").patch(
        f"{API}/tenants/acme/", {"name": "Hijacked"}, format="json"
    )

    # then
    assert by_owner.status_code == 200
    assert_error(by_viewer, 403)
    world.acme.refresh_from_db()
    assert world.acme.name == "Renamed"


def test_a_key_writes_when_its_own_rule_says_it_holds_the_admin_scope(world: World) -> None:
    # given
    client = APIClient()
    client.force_authenticate(user=world.owner, token=RuledKey(tenant_id=world.acme.pk, scopes=("root",)))

    # when
    response = client.patch(f"{API}/tenants/acme/", {"name": "Renamed"}, format="json")

    # then the key's rule decides, as for the other apps' scopes, not a copy of it here
    assert response.status_code == 200, response.content
    world.acme.refresh_from_db()
    assert world.acme.name == "Renamed"


def test_a_key_of_no_member_neither_reads_nor_writes(world: World) -> None:
    # given: a key whose creator left the tenant
    former = UserFactory(username="former")
    client = key_client(former, world.acme, "admin")

    # when
    read = client.get(f"{API}/tenants/acme/quotas/")
    written = client.patch(f"{API}/tenants/acme/", {"name": "Orphaned"}, format="json")

    # then: a key acts with its person's current role, and a former member has none
    assert_error(read, 403)
    assert_error(written, 403)


def test_a_key_cannot_create_tenants(world: World) -> None:
    # when
    response = key_client(world.owner, world.acme, "admin").post(
        f"{API}/tenants/", {"name": "Spawn", "slug": "spawn"}, format="json"
    )

    # then
    assert_error(response, 403, "authorization_error")
    assert not Tenant.objects.filter(slug="spawn").exists()


def test_a_key_naming_another_tenant_in_the_header_is_refused(world: World) -> None:
    # when
    response = key_client(world.owner, world.acme, "read", header="initech").get(f"{API}/sharing/grants/")

    # then
    assert_error(response, 403, "authorization_error")
