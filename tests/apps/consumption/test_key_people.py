"""Keys follow their people: a key acts with the current role of the person it was created for, ends (or, with
`KEYS_OUTLIVE_MEMBERS`, keeps only `consume`) when they leave, and a key without a person is its tenant's service
account, acting by its scopes alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.utils import timezone
from graphql_relay import to_global_id
from rest_framework.test import APIClient

from apps.consumption import services
from apps.consumption.conf import consumption_settings
from apps.consumption.keys import hash_secret, key_cache
from apps.consumption.models import ApiKey, Scope
from apps.tenancy import services as tenancy
from apps.tenancy.models import AuditLog, Membership, Role, Tenant, Tier
from tests.apps.gateway.support import gql
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1"
KEY_CREATE = """
mutation($scopes: [String!]) {
  apiKeyCreate(name: "escalated", scopes: $scopes) { apiKey { id } errors { message code } }
}
"""
KEY_REVOKE = "mutation($id: ID!) { apiKeyRevoke(id: $id) { apiKey { id } errors { message code } } }"
API_KEYS = "{ apiKeys(first: 5) { totalCount } }"
AUDIT_LOG = "query($slug: String!) { tenant(slug: $slug) { myRole auditLog(first: 5) { totalCount } } }"


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def graphql(secret: str, query: str, **variables: Any) -> dict[str, Any]:
    return gql(Client(HTTP_AUTHORIZATION=f"Bearer {secret}"), query, variables).json()


def code_of(response: Any) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def acme(transactional_db: Any) -> dict[str, Any]:
    """Tenant acme with its owner, an admin (alice) and two of alice's keys; the owner's key."""
    tenant = TenantFactory(slug="acme", tier=Tier.PROFESSIONAL)
    owner, alice = UserFactory(username="owner"), UserFactory(username="alice")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    membership = MembershipFactory(tenant=tenant, user=alice, role=Role.ADMIN)
    key, secret = services.create_api_key(tenant=tenant, actor=alice, name="alice", scopes=[Scope.ADMIN, Scope.CONSUME])
    read_key, read_secret = services.create_api_key(tenant=tenant, actor=alice, name="alice-read", scopes=[Scope.READ])
    owner_key, _ = services.create_api_key(tenant=tenant, actor=owner, name="owner", scopes=[Scope.CONSUME])
    return {
        "tenant": tenant,
        "owner": owner,
        "alice": alice,
        "membership": membership,
        "key": key,
        "secret": secret,
        "read_key": read_key,
        "read_secret": read_secret,
        "owner_key": owner_key,
    }


def management_statuses(secret: str, owner_key: ApiKey) -> dict[str, int]:
    """What a key can do of the management API: read members, the audit log, keys and usage; create an admin key;
    revoke the owner's key."""
    client = bearer(secret)
    return {
        "members": client.get(f"{API}/tenants/acme/members/").status_code,
        "audit": client.get(f"{API}/tenants/acme/audit-log/").status_code,
        "keys": client.get(f"{API}/keys/").status_code,
        "usage": client.get(f"{API}/usage/").status_code,
        "create": client.post(f"{API}/keys/", {"name": "x", "scopes": ["admin"]}, format="json").status_code,
        "revoke": client.post(f"{API}/keys/{owner_key.pk}/revoke/").status_code,
    }


# --- The current role --------------------------------------------------------------------------------------


def test_a_demoted_creators_key_loses_what_the_role_lost(acme: dict[str, Any]) -> None:
    # given alice's admin key, with which she managed keys
    assert bearer(acme["secret"]).get(f"{API}/keys/").status_code == 200

    # when alice is demoted to member
    tenancy.change_member_role(membership=acme["membership"], role=Role.MEMBER, actor=acme["owner"])

    # then her key reads what a member reads, and no more
    statuses = management_statuses(acme["secret"], acme["owner_key"])
    assert statuses == {"members": 200, "audit": 403, "keys": 403, "usage": 200, "create": 403, "revoke": 403}
    created = graphql(acme["secret"], KEY_CREATE, scopes=["admin"])["data"]["apiKeyCreate"]
    revoked = graphql(acme["secret"], KEY_REVOKE, id=to_global_id("ApiKeyNode", str(acme["owner_key"].pk)))
    listed = graphql(acme["secret"], API_KEYS)
    audit = graphql(acme["secret"], AUDIT_LOG, slug="acme")["data"]["tenant"]
    assert created["apiKey"] is None and created["errors"]
    assert revoked["data"]["apiKeyRevoke"]["apiKey"] is None and revoked["data"]["apiKeyRevoke"]["errors"]
    assert listed["data"]["apiKeys"] is None and listed["errors"]
    assert audit["myRole"] == "member" and audit["auditLog"]["totalCount"] == 0
    assert ApiKey.objects.filter(tenant=acme["tenant"]).count() == 3
    assert ApiKey.objects.get(pk=acme["owner_key"].pk).revoked_at is None

    # and promoted again, it is an admin's key again
    membership = Membership.objects.get(pk=acme["membership"].pk)
    tenancy.change_member_role(membership=membership, role=Role.ADMIN, actor=acme["owner"])
    assert bearer(acme["secret"]).get(f"{API}/keys/").status_code == 200


# --- People who leave ----------------------------------------------------------------------------------------


def deactivate(acme: dict[str, Any]) -> None:
    alice = get_user_model().objects.get(pk=acme["alice"].pk)
    alice.is_active = False
    alice.save()  # as the admin's user form and a shell do


def remove(acme: dict[str, Any]) -> None:
    tenancy.remove_member(membership=acme["membership"], actor=acme["owner"])


def delete_membership(acme: dict[str, Any]) -> None:
    Membership.objects.get(pk=acme["membership"].pk).delete()  # as the admin's delete does


def delete_user(acme: dict[str, Any]) -> None:
    get_user_model().objects.get(pk=acme["alice"].pk).delete()


LEAVING = [deactivate, remove, delete_membership, delete_user]


@pytest.mark.parametrize("leave", LEAVING, ids=lambda leave: leave.__name__)
def test_the_keys_of_someone_who_leaves_are_revoked_everywhere(
    acme: dict[str, Any], leave: Callable[[dict[str, Any]], None]
) -> None:
    # given alice's keys, cached by this worker
    assert bearer(acme["secret"]).get(f"{API}/keys/").status_code == 200
    cached = key_cache.get(hash_secret(acme["secret"]))[1]
    assert cached is not None

    # when alice leaves the tenant
    leave(acme)
    key_cache.put(hash_secret(acme["secret"]), cached)  # as another worker still holds it

    # then her keys are revoked (database and the shared flag) and refused, the owner's key untouched
    for key in (acme["key"], acme["read_key"]):
        key.refresh_from_db()
        assert key.revoked_at is not None
    assert ApiKey.objects.get(pk=acme["owner_key"].pk).revoked_at is None
    statuses = management_statuses(acme["secret"], acme["owner_key"])
    assert set(statuses.values()) == {401}, statuses
    assert Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {acme['secret']}").status_code == 401
    entry = AuditLog.objects.filter(action="api_key_revoked", object_id=str(acme["key"].pk)).get()
    assert entry.actor_label == "system" and entry.after["reason"].startswith("creator_")


def test_a_key_whose_creator_left_without_signals_cannot_manage(acme: dict[str, Any]) -> None:
    # given alice deactivated by a bulk update, which sends no signal and so revokes nothing
    get_user_model().objects.filter(pk=acme["alice"].pk).update(is_active=False)

    # then her key has no management rights left: it is not a service account
    statuses = management_statuses(acme["secret"], acme["owner_key"])
    assert set(statuses.values()) == {403}, statuses
    response = bearer(acme["secret"]).get(f"{API}/keys/")
    assert code_of(response) == "key_creator_departed"
    assert graphql(acme["secret"], API_KEYS)["errors"][0]["extensions"]["code"] == "key_creator_departed"
    assert ApiKey.objects.filter(tenant=acme["tenant"]).count() == 3


@override_settings(MARKETPLACE_CONSUMPTION={"KEYS_OUTLIVE_MEMBERS": True})
@pytest.mark.parametrize("leave", LEAVING, ids=lambda leave: leave.__name__)
def test_with_keys_outliving_members_a_consume_key_keeps_calling_and_manages_nothing(
    acme: dict[str, Any], leave: Callable[[dict[str, Any]], None]
) -> None:
    # when alice leaves
    leave(acme)

    # then her consume key stays, reduced to consume; her read-only key is revoked
    key = ApiKey.objects.get(pk=acme["key"].pk)
    assert key.revoked_at is None and key.scopes == [Scope.CONSUME]
    assert ApiKey.objects.get(pk=acme["read_key"].pk).revoked_at is not None
    assert Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {acme['secret']}").status_code == 200
    statuses = management_statuses(acme["secret"], acme["owner_key"])
    assert set(statuses.values()) == {403}, statuses
    reduced = AuditLog.objects.get(action="api_key_reduced", object_id=str(key.pk))
    assert reduced.before == {"scopes": [Scope.ADMIN, Scope.CONSUME]}


def test_keys_in_other_tenants_stay_when_someone_leaves_one(acme: dict[str, Any]) -> None:
    # given alice is also a member of globex, with a key there
    globex = TenantFactory(slug="globex")
    MembershipFactory(tenant=globex, user=acme["alice"], role=Role.OWNER)
    globex_key, _ = services.create_api_key(tenant=globex, actor=acme["alice"], name="g", scopes=[Scope.CONSUME])

    # when she leaves acme
    remove(acme)

    # then only her acme keys end
    assert ApiKey.objects.get(pk=globex_key.pk).revoked_at is None
    assert ApiKey.objects.get(pk=acme["key"].pk).revoked_at is not None


def test_a_rotated_key_keeps_its_person(acme: dict[str, Any]) -> None:
    # given alice's key rotated by the owner
    successor, _ = services.rotate_api_key(key=acme["key"], actor=acme["owner"], grace_hours=1)
    assert successor.created_by_id == acme["alice"].pk

    # when alice leaves
    remove(acme)

    # then the successor ends with her
    assert ApiKey.objects.get(pk=successor.pk).revoked_at is not None


# --- Keys without a person -----------------------------------------------------------------------------------


def test_a_key_without_creator_is_its_tenants_service_account(acme: dict[str, Any]) -> None:
    # given keys made without --user
    _, admin_secret = services.create_api_key(tenant=acme["tenant"], actor=None, name="ops", scopes=[Scope.ADMIN])
    _, read_secret = services.create_api_key(tenant=acme["tenant"], actor=None, name="ro", scopes=[Scope.READ])
    newcomer = UserFactory(username="newcomer")
    admin, reader = bearer(admin_secret), bearer(read_secret)

    # then `admin` does what a tenant admin does, and nothing only an owner does
    added = admin.post(f"{API}/tenants/acme/members/", {"username": "newcomer", "role": "member"}, format="json")
    assert added.status_code == 201, added.content
    assert Membership.objects.filter(tenant=acme["tenant"], user=newcomer).exists()
    assert admin.post(f"{API}/keys/", {"name": "ci", "scopes": ["consume"]}, format="json").status_code == 201
    assert admin.post(f"{API}/tenants/acme/tier/", {"tier": "enterprise"}, format="json").status_code == 403
    owners = Membership.objects.get(tenant=acme["tenant"], user=acme["owner"])
    assert admin.patch(f"{API}/tenants/acme/members/{owners.pk}/", {"role": "viewer"}, format="json").status_code == 403
    assert Tenant.objects.get(pk=acme["tenant"].pk).tier == Tier.PROFESSIONAL
    entry = AuditLog.objects.get(action="member_added", after__user=newcomer.pk)
    assert entry.actor_id is None and entry.actor_label.startswith("api-key:")
    assert graphql(admin_secret, AUDIT_LOG, slug="acme")["data"]["tenant"]["myRole"] == "admin"
    # and `read` reads what an admin reads, and writes nothing
    assert reader.get(f"{API}/tenants/acme/audit-log/").status_code == 200
    assert reader.post(f"{API}/tenants/acme/members/", {"username": "x", "role": "member"}).status_code == 403
    assert reader.get(f"{API}/keys/").status_code == 403
    assert reader.post(f"{API}/keys/", {"name": "ci"}, format="json").status_code == 403


# --- Rotation ------------------------------------------------------------------------------------------------


def test_rotation_without_grace_stops_the_old_key_on_every_worker_at_once(acme: dict[str, Any]) -> None:
    # given the old key cached by this worker, as every worker that served it has it
    client = bearer(acme["read_secret"])
    assert client.get(f"{API}/quota/").status_code == 200
    cached = key_cache.get(hash_secret(acme["read_secret"]))[1]

    # when it is rotated without grace
    _, new_secret = services.rotate_api_key(key=acme["read_key"], actor=acme["owner"], grace_hours=0)
    key_cache.put(hash_secret(acme["read_secret"]), cached)

    # then the shared flag refuses the old key already; the new one works
    assert client.get(f"{API}/quota/").status_code == 401
    assert bearer(new_secret).get(f"{API}/quota/").status_code == 200
    assert ApiKey.objects.get(pk=acme["read_key"].pk).revoked_at is None  # expired, not revoked


@pytest.mark.parametrize("grace_hours", [1 / 3600, 5 / 3600])
def test_a_grace_shorter_than_the_key_cache_lasts_until_every_worker_has_read_it(
    acme: dict[str, Any], grace_hours: float
) -> None:
    # when a key is rotated with a few seconds of grace
    before = timezone.now()
    services.rotate_api_key(key=acme["read_key"], actor=acme["owner"], grace_hours=grace_hours)

    # then its expiry is no earlier than a worker's cached copy can be stale, and still within a second of that
    expires_at = ApiKey.objects.get(pk=acme["read_key"].pk).expires_at
    cache = timedelta(seconds=consumption_settings.KEY_CACHE_SECONDS)
    assert before + cache < expires_at <= timezone.now() + cache + timedelta(seconds=1)


@pytest.mark.redis
async def test_a_suspended_tenants_cached_keys_are_refused_at_once_and_work_again_when_reactivated(
    make_key: Any, echo_service: Any, consumer: Any
) -> None:
    """A key cached by a worker still says its tenant works: suspension flags the tenant for every worker's
    admission at once (before, a cached key was admitted until the key cache expired)."""
    from apps.tenancy.services import reactivate_tenant, suspend_tenant
    from tests.apps.consumption.test_proxy import CHAT, post

    secret = await sync_to_async(make_key)()
    assert (await post("/v1/chat/completions", CHAT, secret)).status_code == 200  # the key is now cached
    staff = await sync_to_async(UserFactory)(username="platform", is_staff=True, is_superuser=True)

    await sync_to_async(suspend_tenant)(tenant=consumer, actor=staff, reason="unpaid invoices")
    refused = await post("/v1/chat/completions", CHAT, secret)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "tenant_suspended"

    await sync_to_async(reactivate_tenant)(tenant=consumer, actor=staff)
    assert (await post("/v1/chat/completions", CHAT, secret)).status_code == 200
