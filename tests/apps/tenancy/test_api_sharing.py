"""REST API of sharing: policies, access requests (approve, reject) and grants (revoke), in the caller's tenant."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.tenancy import sharing
from apps.tenancy.models import (
    AccessRequest,
    AccessRequestStatus,
    AuditLog,
    Grant,
    GrantStatus,
    Role,
    SharingPolicy,
    Visibility,
)
from tests.apps.tenancy.api_support import (
    API,
    World,
    assert_error,
    build_world,
    client_for,
    unregister_widgets,
)
from tests.apps.tenancy.factories import MembershipFactory

pytestmark = pytest.mark.django_db

POLICIES = f"{API}/sharing/policies/"
REQUESTS = f"{API}/sharing/requests/"
GRANTS = f"{API}/sharing/grants/"


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def _ids(response) -> set[str]:
    return {row["id"] for row in response.json()["results"]}


# --- Policies ------------------------------------------------------------------------------------------------


def test_members_list_their_tenants_policies(world: World) -> None:
    # when
    response = client_for(world.viewer).get(POLICIES)

    # then
    assert response.status_code == 200
    assert _ids(response) == {str(p.pk) for p in SharingPolicy.objects.filter(owner=world.acme)}
    assert {row["owner"] for row in response.json()["results"]} == {"acme"}


def test_policies_filter_by_visibility(world: World) -> None:
    # when
    response = client_for(world.owner).get(POLICIES, {"visibility": Visibility.PRIVATE})
    refused = client_for(world.owner).get(POLICIES, {"visibility": "secret"})

    # then
    assert _ids(response) == {str(world.private_policy.pk)}
    assert_error(refused, 400, "validation_error", field="visibility")


def test_admins_share_a_resource(world: World) -> None:
    # given
    payload = {
        "resource_type": "widget",
        "resource_id": "acme:w9",
        "visibility": Visibility.TENANT,
        "allowed_tenants": ["initech", "globex"],
        "blocked_tenants": [],
        "tier_minimum": "starter",
        "regions": ["eu-west"],
        "max_cost_per_month": "250.50",
        "requires_approval": True,
        "max_consumers": 5,
        "expires_at": "2030-01-01T00:00:00Z",
        "provider_share_percent": "70",
        "platform_fee_percent": "30",
    }

    # when
    response = client_for(world.admin).post(POLICIES, payload, format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["owner"] == "acme"
    assert sorted(body["allowed_tenants"]) == ["globex", "initech"]
    assert (body["tier_minimum"], body["regions"], body["max_consumers"]) == ("starter", ["eu-west"], 5)
    assert (body["provider_share_percent"], body["platform_fee_percent"]) == ("70.00", "30.00")
    assert body["max_cost_per_month"] == "250.500000"
    assert AuditLog.objects.filter(tenant=world.acme, action="sharing_policy_created").count() == 4


def test_members_below_admin_cannot_share(world: World) -> None:
    # when
    response = client_for(world.member).post(
        POLICIES, {"resource_type": "widget", "resource_id": "acme:w9"}, format="json"
    )

    # then
    assert_error(response, 403)
    assert not SharingPolicy.objects.filter(resource_id="acme:w9").exists()


NEW_WIDGET = {"resource_type": "widget", "resource_id": "acme:w9"}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"resource_id": "acme:w9"}, "resource_type"),
        ({"resource_type": "widget"}, "resource_id"),
        ({"resource_type": "gadget", "resource_id": "acme:w9"}, "resource_type"),
        ({**NEW_WIDGET, "visibility": "secret"}, "visibility"),
        ({**NEW_WIDGET, "allowed_tenants": ["nobody-here"]}, "allowed_tenants"),
        ({**NEW_WIDGET, "blocked_tenants": "globex"}, "blocked_tenants"),
        ({**NEW_WIDGET, "tier_minimum": "platinum"}, "tier_minimum"),
        ({**NEW_WIDGET, "regions": "eu"}, "regions"),
        ({**NEW_WIDGET, "max_cost_per_month": "-1"}, "max_cost_per_month"),
        ({**NEW_WIDGET, "max_consumers": 0}, "max_consumers"),
        ({**NEW_WIDGET, "max_consumers": 10**12}, "max_consumers"),
        ({**NEW_WIDGET, "expires_at": "soon"}, "expires_at"),
        ({**NEW_WIDGET, "provider_share_percent": "60", "platform_fee_percent": "30"}, "platform_fee_percent"),
        ({**NEW_WIDGET, "provider_share_percent": "150"}, "provider_share_percent"),
        ({**NEW_WIDGET, "requires_approval": "maybe"}, "requires_approval"),
        ({**NEW_WIDGET, "owner": "globex"}, "owner"),
    ],
)
def test_sharing_refuses_bad_input_naming_the_field(world: World, payload: dict, field: str) -> None:
    # given
    before = SharingPolicy.objects.count()

    # when
    response = client_for(world.owner).post(POLICIES, payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    assert SharingPolicy.objects.count() == before


def test_a_second_policy_on_a_resource_conflicts(world: World) -> None:
    # when
    response = client_for(world.owner).post(
        POLICIES, {"resource_type": "widget", "resource_id": "acme:w1"}, format="json"
    )

    # then
    assert_error(response, 409, "conflict")


def test_members_see_one_policy_and_admins_change_it(world: World) -> None:
    # given
    url = f"{POLICIES}{world.policy.pk}/"

    # when
    shown = client_for(world.viewer).get(url)
    changed = client_for(world.admin).patch(
        url, {"max_consumers": 2, "blocked_tenants": ["globex"], "visibility": Visibility.PUBLIC}, format="json"
    )

    # then
    assert shown.status_code == 200
    assert shown.json()["resource_id"] == "acme:w1"
    assert changed.status_code == 200, changed.content
    assert changed.json()["max_consumers"] == 2
    assert changed.json()["blocked_tenants"] == ["globex"]
    assert changed.json()["visibility"] == Visibility.PUBLIC
    assert AuditLog.objects.filter(tenant=world.acme, action="sharing_policy_updated").exists()


def test_policy_changes_are_all_or_nothing(world: World) -> None:
    # when
    response = client_for(world.owner).patch(
        f"{POLICIES}{world.policy.pk}/", {"max_consumers": 2, "allowed_tenants": ["nobody-here"]}, format="json"
    )

    # then
    assert_error(response, 400, "validation_error", field="allowed_tenants")
    world.policy.refresh_from_db()
    assert world.policy.max_consumers is None


def test_a_bad_item_of_a_list_is_named_by_its_path_as_in_graphql(world: World) -> None:
    # when
    response = client_for(world.owner).patch(
        f"{POLICIES}{world.policy.pk}/", {"regions": ["eu", "x" * 33]}, format="json"
    )

    # then the documented shape: each path to its list of messages
    body = assert_error(response, 400, "validation_error")
    assert body["error"]["details"]["fields"] == {"regions[1]": ["Ensure this field has no more than 32 characters."]}


@pytest.mark.parametrize(
    ("payload", "field"), [({"resource_id": "acme:w7"}, "resource_id"), ({"max_consumers": -3}, "max_consumers")]
)
def test_policy_changes_refuse_bad_input(world: World, payload: dict, field: str) -> None:
    # when
    response = client_for(world.owner).patch(f"{POLICIES}{world.policy.pk}/", payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)


def test_members_below_admin_cannot_change_a_policy(world: World) -> None:
    # when
    response = client_for(world.member).patch(f"{POLICIES}{world.policy.pk}/", {"max_consumers": 1}, format="json")

    # then
    assert_error(response, 403)


# --- Tenant context ------------------------------------------------------------------------------------------


def test_a_user_of_several_tenants_names_one_in_the_header(world: World) -> None:
    # given
    MembershipFactory(tenant=world.initech, user=world.owner, role=Role.VIEWER)

    # when
    ambiguous = client_for(world.owner).get(POLICIES)
    as_acme = client_for(world.owner, tenant="acme").get(POLICIES)
    as_initech = client_for(world.owner, tenant="initech").get(POLICIES)

    # then
    assert_error(ambiguous, 400, "validation_error", field="X-Tenant")
    assert as_acme.json()["count"] == 3
    assert as_initech.json()["count"] == 0


def test_a_user_without_a_tenant_is_refused(world: World) -> None:
    # when
    response = client_for(world.staff).get(POLICIES)

    # then
    assert_error(response, 403, "authorization_error")


# --- Access requests -----------------------------------------------------------------------------------------


def test_both_sides_list_a_request_and_filter_it_by_direction(world: World) -> None:
    # given
    provider, consumer = client_for(world.owner), client_for(world.carol)

    # when
    received = provider.get(REQUESTS, {"direction": "received", "status": AccessRequestStatus.PENDING})
    made = consumer.get(REQUESTS, {"direction": "made"})
    consumer_received = consumer.get(REQUESTS, {"direction": "received"})
    refused = consumer.get(REQUESTS, {"direction": "sideways"})

    # then
    assert _ids(received) == {str(world.request.pk)}
    assert _ids(made) == {str(r.pk) for r in AccessRequest.objects.filter(consumer=world.initech)}
    assert consumer_received.json()["count"] == 0
    assert_error(refused, 400, "validation_error", field="direction")


def test_consumer_admins_ask_for_access_and_wait_for_approval(world: World) -> None:
    # given
    gated = SharingPolicy.objects.get(resource_id="acme:w3")

    # when
    response = client_for(world.bob).post(REQUESTS, {"policy": str(gated.pk), "message": "hello"}, format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["consumer"], body["provider"], body["status"]) == ("globex", "acme", AccessRequestStatus.PENDING)
    assert (body["message"], body["requested_by"], body["grant"]) == ("hello", "bob", None)


def test_a_policy_without_approval_grants_at_once(world: World) -> None:
    # when
    response = client_for(world.bob).post(REQUESTS, {"policy": str(world.policy.pk)}, format="json")

    # then
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == AccessRequestStatus.APPROVED
    assert Grant.objects.get(pk=body["grant"]).consumer == world.globex


def test_members_below_admin_cannot_ask_for_access(world: World) -> None:
    # when
    response = client_for(world.globex_member).post(REQUESTS, {"policy": str(world.policy.pk)}, format="json")

    # then
    assert_error(response, 403)
    assert not AccessRequest.objects.filter(consumer=world.globex).exists()


def test_a_private_policy_is_not_found_for_other_tenants(world: World) -> None:
    # when
    response = client_for(world.bob).post(REQUESTS, {"policy": str(world.private_policy.pk)}, format="json")

    # then its existence is not revealed
    assert_error(response, 404, "not_found")


def test_a_second_pending_request_conflicts(world: World) -> None:
    # when
    response = client_for(world.carol).post(REQUESTS, {"policy": str(world.request.policy_id)}, format="json")

    # then
    assert_error(response, 409, "conflict")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "policy"),
        ({"policy": "not-a-uuid"}, "policy"),
        ({"policy": "00000000-0000-0000-0000-000000000000"}, "policy"),
        ({"policy": None}, "policy"),
        ({"policy": "{policy}", "message": "x" * 1001}, "message"),
        ({"policy": "{policy}", "consumer": "acme"}, "consumer"),
    ],
)
def test_requests_refuse_bad_input_naming_the_field(world: World, payload: dict, field: str) -> None:
    # given
    payload = {k: v.format(policy=world.policy.pk) if isinstance(v, str) else v for k, v in payload.items()}

    # when
    response = client_for(world.bob).post(REQUESTS, payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    assert not AccessRequest.objects.filter(consumer=world.globex).exists()


def test_provider_admins_approve_a_request(world: World) -> None:
    # when
    response = client_for(world.admin).post(f"{REQUESTS}{world.request.pk}/approve/", {"note": "ok"}, format="json")

    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["consumer"], body["provider"], body["status"]) == ("initech", "acme", GrantStatus.ACTIVE)
    assert body["request"] == str(world.request.pk)
    world.request.refresh_from_db()
    assert (world.request.status, world.request.decision_note) == (AccessRequestStatus.APPROVED, "ok")


def test_a_consumer_cannot_approve_its_own_request(world: World) -> None:
    # when
    response = client_for(world.carol).post(f"{REQUESTS}{world.request.pk}/approve/")

    # then
    assert_error(response, 403)
    world.request.refresh_from_db()
    assert world.request.status == AccessRequestStatus.PENDING


def test_approval_beyond_capacity_conflicts_and_changes_nothing(world: World) -> None:
    # given
    sharing.update_policy(policy=world.request.policy, actor=world.owner, max_consumers=1)
    sharing.request_access(policy=world.request.policy, consumer=world.globex, actor=world.bob)
    other = AccessRequest.objects.get(consumer=world.globex, policy=world.request.policy)
    client = client_for(world.owner)
    client.post(f"{REQUESTS}{other.pk}/approve/")

    # when
    response = client.post(f"{REQUESTS}{world.request.pk}/approve/")

    # then
    assert_error(response, 409, "capacity_reached")
    world.request.refresh_from_db()
    assert world.request.status == AccessRequestStatus.PENDING
    assert not Grant.objects.filter(consumer=world.initech, policy=world.request.policy).exists()


def test_provider_admins_reject_a_request_and_it_cannot_be_decided_again(world: World) -> None:
    # given
    client = client_for(world.owner)

    # when
    rejected = client.post(f"{REQUESTS}{world.request.pk}/reject/", {"note": "not now"}, format="json")
    again = client.post(f"{REQUESTS}{world.request.pk}/approve/")

    # then
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["decision_note"]) == ("rejected", "not now")
    assert rejected.json()["decided_by"] == "alice"
    assert_error(again, 409, "invalid_transition")


@pytest.mark.parametrize("action", ["approve", "reject"])
def test_decisions_refuse_bad_input(world: World, action: str) -> None:
    # when
    response = client_for(world.owner).post(
        f"{REQUESTS}{world.request.pk}/{action}/", {"note": "x" * 1001, "grant": "all"}, format="json"
    )

    # then
    body = assert_error(response, 400, "validation_error")
    assert set(body["error"]["details"]["fields"]) == {"note", "grant"}
    world.request.refresh_from_db()
    assert world.request.status == AccessRequestStatus.PENDING


def test_members_see_one_request(world: World) -> None:
    # when
    response = client_for(world.viewer).get(f"{REQUESTS}{world.request.pk}/")

    # then
    assert response.status_code == 200
    assert response.json()["message"] == "please"


# --- Grants --------------------------------------------------------------------------------------------------


def test_both_sides_list_a_grant_by_direction(world: World) -> None:
    # when
    given = client_for(world.viewer).get(GRANTS, {"direction": "given"})
    held = client_for(world.carol).get(GRANTS, {"direction": "held", "status": GrantStatus.ACTIVE})
    none_held = client_for(world.viewer).get(GRANTS, {"direction": "held"})

    # then
    assert _ids(given) == {str(world.grant.pk)}
    assert _ids(held) == {str(world.grant.pk)}
    assert none_held.json()["count"] == 0


def test_members_see_one_grant(world: World) -> None:
    # when
    response = client_for(world.carol).get(f"{GRANTS}{world.grant.pk}/")

    # then
    assert response.status_code == 200
    assert (response.json()["resource_id"], response.json()["consumer"]) == ("acme:w1", "initech")


@pytest.mark.parametrize("who", ["owner", "carol"])
def test_the_provider_or_the_consumer_revokes_a_grant(world: World, who: str) -> None:
    # given
    client = client_for(getattr(world, who))

    # when
    revoked = client.post(f"{GRANTS}{world.grant.pk}/revoke/")
    again = client.post(f"{GRANTS}{world.grant.pk}/revoke/")

    # then
    assert revoked.status_code == 200
    assert revoked.json()["status"] == GrantStatus.REVOKED and revoked.json()["revoked_at"]
    assert_error(again, 409, "invalid_transition")


def test_members_below_admin_cannot_revoke(world: World) -> None:
    # when
    response = client_for(world.member).post(f"{GRANTS}{world.grant.pk}/revoke/")

    # then
    assert_error(response, 403)
    world.grant.refresh_from_db()
    assert world.grant.status == GrantStatus.ACTIVE
