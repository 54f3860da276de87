"""The keys API: secret once, never in responses or logs; rotation, revocation, roles, 400s, tenant isolation."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.consumption import services
from apps.consumption.keys import hash_secret
from apps.consumption.models import ApiKey, Scope
from apps.tenancy.models import AuditLog, Role, Tier
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1"


def session(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def fields_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, response.content
    return response.json()["error"]["details"]["fields"]


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    a = TenantFactory(slug="acme", tier=Tier.PROFESSIONAL)
    b = TenantFactory(slug="globex", tier=Tier.PROFESSIONAL)
    users = {"b_owner": UserFactory(username="b-owner")}
    for role in (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER):
        users[f"a_{role}"] = UserFactory(username=f"a-{role}")
        MembershipFactory(tenant=a, user=users[f"a_{role}"], role=role)
    MembershipFactory(tenant=b, user=users["b_owner"], role=Role.OWNER)
    return {"a": a, "b": b, **users}


@pytest.fixture
def admin_client(world: dict[str, Any]) -> APIClient:
    return session(world["a_admin"])


def create(client: APIClient, **body: Any) -> Any:
    return client.post(f"{API}/keys/", {"name": "backend", **body}, format="json")


def test_create_shows_the_secret_once_and_stores_only_its_hash(admin_client: APIClient) -> None:
    # when
    response = create(admin_client, scopes=["consume", "read"], rpm_limit=60, budget_day_usd="2.5")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    secret = body["secret"]
    assert secret.startswith("mk_") and len(secret) >= 40
    assert response["Cache-Control"] == "no-store"
    assert body["display"] == f"{secret[:7]}…{secret[-4:]}"
    assert body["scopes"] == ["consume", "read"] and body["rpm_limit"] == 60 and body["budget_day_usd"] == "2.5"
    assert body["status"] == "active" and body["created_by"] == "a-admin"
    assert "key_hash" not in body
    key = ApiKey.objects.get(pk=body["id"])
    assert key.key_hash == hash_secret(secret) and secret not in {key.key_hash, key.prefix, key.last4}


def test_list_and_detail_never_show_the_secret_or_its_hash(admin_client: APIClient) -> None:
    secret = create(admin_client).json()["secret"]
    key = ApiKey.objects.get()

    listing = admin_client.get(f"{API}/keys/")
    detail = admin_client.get(f"{API}/keys/{key.pk}/")

    assert listing.status_code == detail.status_code == 200
    for response in (listing, detail):
        text = response.content.decode()
        assert secret not in text and key.key_hash not in text
        assert "secret" not in text and "key_hash" not in text
    assert listing.json()["results"][0]["id"] == str(key.pk)
    assert detail.json()["display"] == key.display


def test_no_secret_or_hash_reaches_the_logs(
    admin_client: APIClient, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)

    created = create(admin_client, scopes=["admin"]).json()
    admin_client.get(f"{API}/keys/")
    rotated = admin_client.post(f"{API}/keys/{created['id']}/rotate/", {}, format="json").json()
    assert bearer(rotated["secret"]).get(f"{API}/keys/").status_code == 200  # authenticated by the key itself
    admin_client.post(f"{API}/keys/{rotated['id']}/revoke/")
    assert bearer(rotated["secret"]).get(f"{API}/keys/").status_code == 401  # refused, and logged

    captured = capfd.readouterr()
    logged = caplog.text + captured.out + captured.err + repr([r.__dict__ for r in caplog.records])
    assert "api_key_created" in logged  # the audit events were logged...
    hashes = ApiKey.objects.values_list("key_hash", flat=True)
    for secret in (created["secret"], rotated["secret"], *hashes):  # ...without any secret or hash
        assert secret not in logged
    assert AuditLog.objects.filter(action__startswith="api_key_").count() == 3
    for entry in AuditLog.objects.all():
        assert created["secret"] not in str(entry.after) and rotated["secret"] not in str(entry.after)
        assert not any(h in str(entry.after) for h in hashes)


def test_rotation_returns_a_new_secret_once_and_keeps_the_old_for_the_grace(admin_client: APIClient) -> None:
    old = create(admin_client, scopes=["admin"]).json()

    response = admin_client.post(f"{API}/keys/{old['id']}/rotate/", {"grace_hours": 2}, format="json")

    assert response.status_code == 201, response.content
    new = response.json()
    assert new["secret"] != old["secret"] and new["id"] != old["id"]
    assert new["rotated_from"] == old["id"] and new["scopes"] == ["admin"]
    expires = timezone.datetime.fromisoformat(new["previous_key"]["expires_at"].replace("Z", "+00:00"))
    assert abs(expires - (timezone.now() + timedelta(hours=2))) < timedelta(minutes=1)
    # both secrets authenticate during the grace period; the old one is listed as rotated
    assert bearer(old["secret"]).get(f"{API}/keys/").status_code == 200
    assert bearer(new["secret"]).get(f"{API}/keys/").status_code == 200
    assert admin_client.get(f"{API}/keys/{old['id']}/").json()["rotated_to"] == new["id"]
    detail = admin_client.get(f"{API}/keys/{new['id']}/").content.decode()
    assert new["secret"] not in detail
    # an already-rotated key cannot be rotated again
    again = admin_client.post(f"{API}/keys/{old['id']}/rotate/", {}, format="json")
    assert again.status_code == 409


def test_rotation_without_grace_expires_the_old_secret(admin_client: APIClient) -> None:
    old = create(admin_client, scopes=["read"]).json()

    new = admin_client.post(f"{API}/keys/{old['id']}/rotate/", {"grace_hours": 0}, format="json").json()

    assert bearer(old["secret"]).get(f"{API}/quota/").status_code == 401
    assert bearer(new["secret"]).get(f"{API}/quota/").status_code == 200


def test_revocation(admin_client: APIClient) -> None:
    key = create(admin_client, scopes=["read"]).json()
    assert bearer(key["secret"]).get(f"{API}/quota/").status_code == 200

    response = admin_client.post(f"{API}/keys/{key['id']}/revoke/")

    assert response.status_code == 200
    assert response.json()["status"] == "revoked" and response.json()["revoked_at"]
    assert bearer(key["secret"]).get(f"{API}/quota/").status_code == 401
    assert admin_client.post(f"{API}/keys/{key['id']}/revoke/").status_code == 409
    assert admin_client.post(f"{API}/keys/{key['id']}/rotate/", {}, format="json").status_code == 409


def test_status_filter(admin_client: APIClient, world: dict[str, Any]) -> None:
    active = create(admin_client).json()
    revoked = create(admin_client).json()
    expired = create(admin_client).json()
    admin_client.post(f"{API}/keys/{revoked['id']}/revoke/")
    ApiKey.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))

    def ids(status: str) -> set[str]:
        return {row["id"] for row in admin_client.get(f"{API}/keys/", {"status": status}).json()["results"]}

    assert ids("active") == {active["id"]}
    assert ids("revoked") == {revoked["id"]}
    assert ids("expired") == {expired["id"]}
    assert "status" in fields_of(admin_client.get(f"{API}/keys/", {"status": "lost"}))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"scopes": ["root"]}, "scopes[0]"),
        ({"scopes": []}, "scopes"),
        ({"scopes": "consume"}, "scopes"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"tpm_limit": "many"}, "tpm_limit"),
        ({"max_parallel": -1}, "max_parallel"),
        ({"budget_day_usd": "-1"}, "budget_day_usd"),
        ({"budget_month_usd": "0"}, "budget_month_usd"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"allowed_models": ["no-slash"]}, "allowed_models"),
        ({"key_hash": "x"}, "key_hash"),
        ({"secret": "mk_mine"}, "secret"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(admin_client: APIClient, body: dict[str, Any], field: str) -> None:
    assert field in fields_of(create(admin_client, **body))
    assert not ApiKey.objects.exists()


def test_a_bad_item_of_a_list_is_named_by_its_path_as_in_graphql(admin_client: APIClient) -> None:
    # when
    response = create(admin_client, scopes=["consume", "root"])

    # then the documented shape: each path to its list of messages
    assert fields_of(response) == {"scopes[1]": ['"root" is not a valid choice.']}
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("grace", [-1, "soon", 24 * 365])
def test_bad_grace_is_a_400(admin_client: APIClient, grace: Any) -> None:
    key = create(admin_client).json()
    assert "grace_hours" in fields_of(
        admin_client.post(f"{API}/keys/{key['id']}/rotate/", {"grace_hours": grace}, format="json")
    )
    assert ApiKey.objects.count() == 1


@pytest.mark.parametrize("role", [Role.MEMBER, Role.VIEWER])
def test_only_tenant_admins_manage_keys(world: dict[str, Any], admin_client: APIClient, role: str) -> None:
    key = create(admin_client).json()
    client = session(world[f"a_{role}"])

    assert client.get(f"{API}/keys/").status_code == 403
    assert client.get(f"{API}/keys/{key['id']}/").status_code == 403
    assert create(client).status_code == 403
    assert client.post(f"{API}/keys/{key['id']}/rotate/", {}, format="json").status_code == 403
    assert client.post(f"{API}/keys/{key['id']}/revoke/").status_code == 403
    assert ApiKey.objects.count() == 1


def test_unauthenticated_is_401(world: dict[str, Any]) -> None:
    assert APIClient().get(f"{API}/keys/").status_code == 401
    assert APIClient().post(f"{API}/keys/", {"name": "x"}, format="json").status_code == 401


def test_another_tenant_never_reaches_a_key(world: dict[str, Any], admin_client: APIClient) -> None:
    a_key = create(admin_client, scopes=["admin"]).json()
    b_admin = session(world["b_owner"])
    _, b_secret = services.create_api_key(tenant=world["b"], actor=world["b_owner"], name="b", scopes=["admin"])

    for client in (b_admin, bearer(b_secret)):
        assert a_key["id"] not in str(client.get(f"{API}/keys/").json())
        assert client.get(f"{API}/keys/{a_key['id']}/").status_code == 404
        assert client.post(f"{API}/keys/{a_key['id']}/rotate/", {}, format="json").status_code == 404
        assert client.post(f"{API}/keys/{a_key['id']}/revoke/").status_code == 404
    # naming tenant A in the header does not help a non-member
    assert b_admin.get(f"{API}/keys/", HTTP_X_TENANT="acme").status_code == 403
    assert ApiKey.objects.get(pk=a_key["id"]).revoked_at is None
    assert bearer(a_key["secret"]).get(f"{API}/keys/").status_code == 200


def test_an_admin_key_manages_keys_as_its_creator(world: dict[str, Any], admin_client: APIClient) -> None:
    admin_key = create(admin_client, scopes=["admin"]).json()

    response = bearer(admin_key["secret"]).post(f"{API}/keys/", {"name": "ci", "scopes": ["consume"]}, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["created_by"] == "a-admin"
    entry = AuditLog.objects.filter(action="api_key_created").order_by("-created_at").first()
    assert entry is not None and entry.actor_label == "a-admin"


def test_the_api_keys_quota_counts_live_keys_and_blocks(db: Any) -> None:
    tenant = TenantFactory(slug="tiny", tier=Tier.FREE)  # 5 keys, BLOCK
    owner = UserFactory(username="tiny-owner")
    MembershipFactory(tenant=tenant, user=owner, role=Role.OWNER)
    client = session(owner)
    created = [create(client).json() for _ in range(5)]
    client.post(f"{API}/keys/{created[0]['id']}/revoke/")
    assert create(client).status_code == 201  # the revoked key freed a slot

    response = create(client)

    assert response.status_code == 402
    quota = {row["quota_type"]: row for row in client.get(f"{API}/quota/").json()["quotas"]}
    assert quota["api_keys"]["used"] == "5" and quota["api_keys"]["limit"] == "5"


def test_keys_of_other_scopes_are_listed_with_metadata_only(admin_client: APIClient) -> None:
    for scopes in (["consume"], ["read", "publish"]):
        create(admin_client, scopes=scopes)

    rows = admin_client.get(f"{API}/keys/").json()["results"]

    assert sorted(tuple(r["scopes"]) for r in rows) == [("consume",), ("publish", "read")]
    assert all(set(r) >= {"id", "display", "prefix", "last4", "status"} for r in rows)


def test_scope_constants_are_the_models() -> None:
    assert set(Scope.values) == {"consume", "read", "publish", "admin"}
