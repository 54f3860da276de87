"""API key authentication of the REST API: bearer keys, scopes, expiry, revocation, rotation grace, tenant binding."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient, APIRequestFactory

from apps.consumption import services
from apps.consumption.authentication import APIKeyAuthentication, ApiKeyPrincipal, HasScope
from apps.consumption.keys import KeyInfo, hash_secret, key_cache
from apps.consumption.models import ApiKey, Scope
from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1"


def key_client(secret: str, **headers: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}", **headers)
    return client


def new_key(tenant: Any, actor: Any, scopes: list[str], **extra: Any) -> tuple[ApiKey, str]:
    return services.create_api_key(tenant=tenant, actor=actor, name="k", scopes=scopes, **extra)


def error_code(response: Any) -> str:
    return response.json()["error"]["code"]


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    a = TenantFactory(slug="acme")
    b = TenantFactory(slug="globex")
    a_owner, b_owner = UserFactory(username="a-owner"), UserFactory(username="b-owner")
    MembershipFactory(tenant=a, user=a_owner, role=Role.OWNER)
    MembershipFactory(tenant=b, user=b_owner, role=Role.OWNER)
    return {"a": a, "b": b, "a_owner": a_owner, "b_owner": b_owner}


def test_a_read_key_authenticates_for_its_tenant(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], world["a_owner"], [Scope.READ])

    response = key_client(secret).get(f"{API}/quota/")

    assert response.status_code == 200, response.content
    assert response.json()["tenant"] == "acme"
    assert response.json()["key"]["display"].startswith(secret[:7])


@pytest.mark.parametrize("header", ["Bearer not-a-marketplace-token", "Token abc", "Basic dXNlcjpwdw=="])
def test_other_tokens_are_left_to_other_authenticators(world: dict[str, Any], header: str) -> None:
    request = APIRequestFactory().get(f"{API}/quota/", HTTP_AUTHORIZATION=header)
    assert APIKeyAuthentication().authenticate(request) is None  # type: ignore[arg-type]

    response = APIClient().get(f"{API}/quota/", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("secret", ["mk_short", "mk_" + "x" * 43, "mk_" + "!" * 43])
def test_bad_or_unknown_keys_are_401(world: dict[str, Any], secret: str) -> None:
    response = key_client(secret).get(f"{API}/quota/")

    assert response.status_code == 401
    assert error_code(response) == "invalid_api_key"


def test_expired_key_is_refused(world: dict[str, Any]) -> None:
    key, secret = new_key(world["a"], world["a_owner"], [Scope.READ])
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = key_client(secret).get(f"{API}/quota/")

    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_revocation_applies_at_once_even_to_a_cached_key(world: dict[str, Any]) -> None:
    key, secret = new_key(world["a"], world["a_owner"], [Scope.READ])
    client = key_client(secret)
    assert client.get(f"{API}/quota/").status_code == 200  # now cached in this process

    # when the key is revoked the way another worker would see it: the cache still holds the usable key
    cached = key_cache.get(hash_secret(secret))[1]
    services.revoke_api_key(key=key, actor=world["a_owner"])
    key_cache.put(hash_secret(secret), cached)

    # then the shared revocation flag refuses it anyway
    response = client.get(f"{API}/quota/")
    assert response.status_code == 401
    assert "revoked" in response.json()["error"]["message"]


def test_rotation_keeps_the_old_secret_for_the_grace_period(world: dict[str, Any]) -> None:
    key, old_secret = new_key(world["a"], world["a_owner"], [Scope.READ])
    _, new_secret = services.rotate_api_key(key=key, actor=world["a_owner"], grace_hours=1)

    assert key_client(old_secret).get(f"{API}/quota/").status_code == 200
    assert key_client(new_secret).get(f"{API}/quota/").status_code == 200

    # when the grace period is over
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    key_cache.forget()

    assert key_client(old_secret).get(f"{API}/quota/").status_code == 401
    assert key_client(new_secret).get(f"{API}/quota/").status_code == 200


def test_a_consume_only_key_cannot_use_the_management_api(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], world["a_owner"], [Scope.CONSUME])

    response = key_client(secret).get(f"{API}/quota/")

    assert response.status_code == 403
    assert error_code(response) == "insufficient_scope"


def test_a_read_key_cannot_write_anything(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], world["a_owner"], [Scope.READ])

    for path in (f"{API}/keys/", f"{API}/services/", f"{API}/sharing/policies/"):
        response = key_client(secret).post(path, {}, format="json")
        assert response.status_code == 403, (path, response.content)
    assert ApiKey.objects.count() == 1


def test_scope_errors_name_the_missing_scope(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], world["a_owner"], [Scope.READ])

    response = key_client(secret).get(f"{API}/keys/")

    assert response.status_code == 403
    assert "'admin' scope" in response.json()["error"]["message"]


def test_a_key_never_acts_for_another_tenant(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], world["a_owner"], [Scope.ADMIN])
    MembershipFactory(tenant=world["b"], user=world["a_owner"], role=Role.OWNER)  # its creator belongs to B too

    # naming the other tenant is refused
    response = key_client(secret, HTTP_X_TENANT="globex").get(f"{API}/keys/")
    assert response.status_code == 403
    # and the other tenant's own endpoints refuse it although the creator is B's owner
    assert key_client(secret).get(f"{API}/tenants/globex/members/").status_code in (403, 404)
    assert key_client(secret).post(
        f"{API}/tenants/globex/members/", {"username": "x", "role": "member"}, format="json"
    ).status_code in (403, 404)
    # its own tenant's are fine
    assert key_client(secret).get(f"{API}/tenants/acme/members/").status_code == 200


def test_the_key_user_holds_no_platform_powers(world: dict[str, Any]) -> None:
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    MembershipFactory(tenant=world["a"], user=root, role=Role.OWNER)
    _, secret = new_key(world["a"], root, [Scope.ADMIN])
    request = APIRequestFactory().get(f"{API}/keys/", HTTP_AUTHORIZATION=f"Bearer {secret}")

    user, info = APIKeyAuthentication().authenticate(request)  # type: ignore[arg-type, misc]

    assert isinstance(info, KeyInfo) and info.tenant_id == str(world["a"].pk)
    assert user.pk == root.pk and not user.is_superuser and not user.is_staff
    with pytest.raises(PermissionError):
        user.save()
    root.refresh_from_db()
    assert root.is_superuser
    # a platform-wide view stays closed to the key
    assert key_client(secret).post(f"{API}/services/00000000-0000-0000-0000-000000000000/approve/").status_code in (
        403,
        404,
    )


def test_a_key_without_creator_gets_a_service_account_principal(world: dict[str, Any]) -> None:
    _, secret = new_key(world["a"], None, [Scope.ADMIN])
    request = APIRequestFactory().get(f"{API}/keys/", HTTP_AUTHORIZATION=f"Bearer {secret}")

    user, _ = APIKeyAuthentication().authenticate(request)  # type: ignore[arg-type, misc]

    assert isinstance(user, ApiKeyPrincipal)
    assert user.is_authenticated and not user.is_superuser and not user.is_staff
    # it manages its tenant's keys: a tenant admin with the admin scope
    response = key_client(secret).post(f"{API}/keys/", {"name": "ci"}, format="json")
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    ("scopes", "method", "allowed"),
    [
        ([Scope.READ], "GET", True),
        ([Scope.READ], "POST", False),
        ([Scope.PUBLISH], "GET", False),
        ([Scope.PUBLISH], "POST", True),
        ([Scope.ADMIN], "GET", True),
        ([Scope.ADMIN], "DELETE", True),
        ([Scope.CONSUME], "GET", False),
    ],
)
def test_has_scope(scopes: list[str], method: str, allowed: bool) -> None:
    permission = HasScope.of(read=Scope.READ, write=Scope.PUBLISH)()
    info = KeyInfo(
        id="k",
        tenant_id="t",
        tenant_slug="t",
        tenant_operational=True,
        scopes=tuple(scopes),
        allowed_models=(),
        rpm_limit=None,
        tpm_limit=None,
        max_parallel=None,
        budget_day_usd=None,
        budget_month_usd=None,
        expires_at=None,
        revoked=False,
    )
    request = type("R", (), {"auth": info, "method": method})()

    assert permission.has_permission(request, None) is allowed
    if not allowed:
        assert "scope" in permission.message


def test_has_scope_lets_session_requests_through() -> None:
    request = type("R", (), {"auth": None, "method": "POST"})()
    assert HasScope().has_permission(request, None)


def test_user_based_endpoints_never_fail_on_a_creatorless_key(world: dict[str, Any]) -> None:
    """Views that look the caller up as a user find no user for a key without creator: they answer (or refuse
    with 403/404), never a 500."""
    _, secret = new_key(world["a"], None, [Scope.ADMIN])
    client = key_client(secret)

    responses = [
        client.get(f"{API}/tenants/"),
        client.get(f"{API}/tenants/acme/members/"),
        client.post(f"{API}/tenants/acme/members/", {"username": "a-owner", "role": "member"}, format="json"),
        client.get(f"{API}/sharing/policies/"),
        client.get(f"{API}/services/"),
    ]

    assert all(r.status_code < 500 for r in responses), [(r.status_code, r.content[:200]) for r in responses]
    assert "globex" not in responses[0].content.decode()
