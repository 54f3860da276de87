"""Tenant isolation of every tenancy REST endpoint: tenant B never reads or changes tenant A's objects.

The endpoint table below must name every route of `apps.tenancy.api.urls` (a test checks it), so a new endpoint
cannot ship without its isolation cases.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import URLPattern, reverse

from apps.tenancy import quotas, services, sharing
from apps.tenancy.api import urls as tenancy_urls
from apps.tenancy.models import (
    AccessRequest,
    AuditLog,
    Grant,
    Membership,
    QuotaOverride,
    QuotaType,
    SharingPolicy,
    Tenant,
    Visibility,
)
from tests.apps.tenancy.api_support import (
    RESOURCE_TYPE,
    World,
    assert_error,
    build_world,
    client_for,
    unregister_widgets,
)

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, aimed at an object of the world (`target`) with an optional body."""

    name: str
    method: str
    target: str = "none"
    body: Callable[[World], dict[str, Any]] | None = None

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.name}({self.target})"


def _url(world: World, endpoint: Endpoint) -> str:
    kwargs: dict[str, Any] = {
        "none": {},
        "tenant": {"slug": "acme"},
        "member": {"slug": "acme", "member_id": world.member_membership.pk},
        "member-under-own-slug": {"slug": "globex", "member_id": world.member_membership.pk},
        "quota": {"slug": "acme", "quota_type": QuotaType.TOKENS},
        "policy": {"pk": world.policy.pk},
        "request": {"pk": world.request.pk},
        "grant": {"pk": world.grant.pk},
    }[endpoint.target]
    return reverse(f"tenancy:{endpoint.name}", kwargs=kwargs)


def _call(client: Any, world: World, endpoint: Endpoint) -> Any:
    if endpoint.method == "get":
        return client.get(_url(world, endpoint))
    body = endpoint.body(world) if endpoint.body else None
    return getattr(client, endpoint.method)(_url(world, endpoint), body, format="json")


# Every endpoint naming one of tenant A's objects (or A itself): B gets 404 — A's existence is never revealed.
A_OBJECT_ENDPOINTS = [
    Endpoint("tenant-detail", "get", "tenant"),
    Endpoint("tenant-detail", "patch", "tenant", lambda w: {"name": "Pwned"}),
    Endpoint("tenant-tier", "post", "tenant", lambda w: {"tier": "enterprise"}),
    Endpoint("tenant-suspend", "post", "tenant", lambda w: {"reason": "pwned"}),
    Endpoint("tenant-reactivate", "post", "tenant"),
    Endpoint("tenant-deactivate", "post", "tenant"),
    Endpoint("member-list", "get", "tenant"),
    Endpoint("member-list", "post", "tenant", lambda w: {"username": "gina", "role": "owner"}),
    Endpoint("member-detail", "get", "member"),
    Endpoint("member-detail", "patch", "member", lambda w: {"role": "viewer"}),
    Endpoint("member-detail", "delete", "member"),
    Endpoint("member-detail", "get", "member-under-own-slug"),
    Endpoint("member-detail", "patch", "member-under-own-slug", lambda w: {"role": "viewer"}),
    Endpoint("member-detail", "delete", "member-under-own-slug"),
    Endpoint("quota-list", "get", "tenant"),
    Endpoint("quota-detail", "get", "quota"),
    Endpoint("quota-detail", "put", "quota", lambda w: {"limit": "1"}),
    Endpoint("quota-detail", "delete", "quota"),
    Endpoint("usage", "get", "tenant"),
    Endpoint("audit-log", "get", "tenant"),
    Endpoint("audit-log", "post", "tenant", lambda w: {"action": "forged"}),
    Endpoint("policy-detail", "get", "policy"),
    Endpoint("policy-detail", "patch", "policy", lambda w: {"max_consumers": 1, "blocked_tenants": ["initech"]}),
    Endpoint("request-detail", "get", "request"),
    Endpoint("request-approve", "post", "request"),
    Endpoint("request-reject", "post", "request", lambda w: {"note": "no"}),
    Endpoint("grant-detail", "get", "grant"),
    Endpoint("grant-revoke", "post", "grant"),
]

# Endpoints that reach A's objects through the body: refused (403) and nothing is written.
A_REFERENCE_ENDPOINTS = [
    Endpoint("policy-list", "post", body=lambda w: {"resource_type": RESOURCE_TYPE, "resource_id": "acme:w9"}),
    Endpoint("request-list", "post", body=lambda w: {"policy": str(w.private_policy.pk)}),
]

# The caller's own collections (checked for A's rows below).
COLLECTION_ENDPOINTS = [
    Endpoint("tenant-list", "get"),
    Endpoint("tenant-list", "post", body=lambda w: {"name": "Evil", "slug": "evil"}),
    Endpoint("policy-list", "get"),
    Endpoint("request-list", "get"),
    Endpoint("grant-list", "get"),
]

ALL_ENDPOINTS = A_OBJECT_ENDPOINTS + A_REFERENCE_ENDPOINTS + COLLECTION_ENDPOINTS


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def _state() -> tuple:
    """Everything an endpoint could change (any write also adds an audit entry)."""
    return (
        AuditLog.objects.count(),
        tuple(Tenant.objects.order_by("slug").values_list("slug", "name", "tier", "status")),
        tuple(Membership.objects.order_by("pk").values_list("pk", "tenant_id", "user_id", "role")),
        tuple(SharingPolicy.objects.order_by("pk").values_list("pk", "visibility", "max_consumers")),
        tuple(AccessRequest.objects.order_by("pk").values_list("pk", "status")),
        tuple(Grant.objects.order_by("pk").values_list("pk", "status")),
        QuotaOverride.objects.count(),
    )


def test_the_endpoint_table_covers_every_route() -> None:
    # given
    routes = {
        (pattern.name, method)
        for pattern in tenancy_urls.urlpatterns
        if isinstance(pattern, URLPattern)
        for method in pattern.callback.actions
        if method != "head"
    }

    # when
    covered = {(endpoint.name, endpoint.method) for endpoint in ALL_ENDPOINTS}

    # then
    assert routes - covered == set()


@pytest.mark.parametrize("endpoint", A_OBJECT_ENDPOINTS, ids=str)
def test_an_owner_of_tenant_b_gets_404_for_tenant_a_objects(world: World, endpoint: Endpoint) -> None:
    # given
    before = _state()

    # when
    response = _call(client_for(world.bob), world, endpoint)

    # then
    assert_error(response, 404, "not_found")
    assert _state() == before


@pytest.mark.parametrize("endpoint", A_OBJECT_ENDPOINTS + A_REFERENCE_ENDPOINTS, ids=str)
def test_a_member_of_tenant_b_gets_404_or_403_for_tenant_a_objects(world: World, endpoint: Endpoint) -> None:
    # given
    before = _state()

    # when
    response = _call(client_for(world.globex_member), world, endpoint)

    # then
    assert_error(response, (403, 404))
    assert _state() == before


@pytest.mark.parametrize("endpoint", A_REFERENCE_ENDPOINTS, ids=str)
def test_tenant_b_cannot_act_on_tenant_a_objects_named_in_the_body(world: World, endpoint: Endpoint) -> None:
    # given
    before = _state()

    # when
    response = _call(client_for(world.bob), world, endpoint)

    # then refused, without revealing whether A's object exists
    assert_error(response, (403, 404))
    assert _state() == before


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS, ids=str)
@pytest.mark.parametrize("header", ["acme", "no-such-tenant"])
def test_an_x_tenant_header_naming_a_tenant_of_which_the_caller_is_not_a_member_is_refused(
    world: World, endpoint: Endpoint, header: str
) -> None:
    # given
    before = _state()

    # when
    response = _call(client_for(world.bob, tenant=header), world, endpoint)

    # then
    body = assert_error(response, 403, "authorization_error")
    assert body["error"]["message"] == f"You are not a member of tenant '{header}'."
    assert _state() == before


@pytest.mark.parametrize("endpoint", ALL_ENDPOINTS, ids=str)
def test_an_unauthenticated_call_is_refused_with_the_envelope(world: World, endpoint: Endpoint) -> None:
    # given
    before = _state()

    # when
    response = _call(client_for(None), world, endpoint)

    # then
    assert_error(response, (401, 403), "authentication_error")
    assert _state() == before


@pytest.mark.parametrize("header", ["acme", "globex"])
def test_an_unauthenticated_call_naming_a_tenant_is_refused(world: World, header: str) -> None:
    # when
    response = client_for(None, tenant=header).get(reverse("tenancy:policy-list"))

    # then
    assert_error(response, 401, "authentication_error")


# --- List endpoints never include tenant A's rows ------------------------------------------------------------


@pytest.fixture
def b_rows(world: World) -> dict[str, Any]:
    """Tenant B's own rows, so that its lists are not trivially empty: a policy, a request and a grant of A's."""
    b_policy = sharing.create_policy(
        resource_type=RESOURCE_TYPE, resource_id="globex:g1", actor=world.bob, visibility=Visibility.PUBLIC
    )
    b_request = sharing.request_access(policy=world.request.policy, consumer=world.globex, actor=world.bob)
    b_grant = sharing.request_access(policy=world.policy, consumer=world.globex, actor=world.bob).grant
    services.update_tenant(tenant=world.globex, actor=world.bob, name="Globex Corp")
    return {"policy": b_policy, "request": b_request, "grant": b_grant}


def _ids(response: Any) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_tenant_list_of_b_never_includes_a(world: World) -> None:
    # when
    response = client_for(world.bob).get(reverse("tenancy:tenant-list"))

    # then
    assert _ids(response) == {str(world.globex.pk)}


def test_members_of_b_never_include_a_members(world: World) -> None:
    # when
    response = client_for(world.bob).get(reverse("tenancy:member-list", kwargs={"slug": "globex"}))

    # then
    assert {row["user"]["username"] for row in response.json()["results"]} == {"bob", "gina"}
    assert _ids(response) == {str(m.pk) for m in Membership.objects.filter(tenant=world.globex)}


def test_audit_log_of_b_never_includes_a_entries(world: World, b_rows: dict[str, Any]) -> None:
    # when
    response = client_for(world.bob).get(reverse("tenancy:audit-log", kwargs={"slug": "globex"}))

    # then
    ids = _ids(response)
    assert ids
    assert ids == {str(pk) for pk in AuditLog.objects.filter(tenant=world.globex).values_list("pk", flat=True)}
    assert not ids & {str(pk) for pk in AuditLog.objects.filter(tenant=world.acme).values_list("pk", flat=True)}


def test_sharing_lists_of_b_hold_only_b_rows(world: World, b_rows: dict[str, Any]) -> None:
    # given
    client = client_for(world.bob)

    # when
    policies = client.get(reverse("tenancy:policy-list"))
    requests = client.get(reverse("tenancy:request-list"))
    grants = client.get(reverse("tenancy:grant-list"))

    # then
    assert _ids(policies) == {str(b_rows["policy"].pk)}
    assert _ids(requests) == {str(b_rows["request"].pk), str(b_rows["grant"].request_id)}
    assert _ids(grants) == {str(b_rows["grant"].pk)}
    assert str(world.request.pk) not in _ids(requests) and str(world.grant.pk) not in _ids(grants)


def test_quotas_and_usage_of_b_count_only_b(world: World) -> None:
    # given
    quotas.consume(world.acme, QuotaType.API_REQUESTS, 5)
    client = client_for(world.bob)

    # when
    usage = client.get(reverse("tenancy:usage", kwargs={"slug": "globex"}))
    status = client.get(reverse("tenancy:quota-list", kwargs={"slug": "globex"}))

    # then
    assert {row["quota_type"]: row["used"] for row in usage.json()["quotas"]}["api_requests"] == "0"
    assert {row["quota_type"]: row["used"] for row in status.json()}["members"] == "2"


def test_b_cannot_reach_a_through_an_a_member_id_under_its_own_slug(world: World) -> None:
    # given: bob administers globex and names one of acme's memberships under globex's URL
    url = reverse("tenancy:member-detail", kwargs={"slug": "globex", "member_id": world.owner_membership.pk})

    # when
    response = client_for(world.bob).delete(url)

    # then
    assert_error(response, 404, "not_found")
    assert Membership.objects.filter(pk=world.owner_membership.pk).exists()
