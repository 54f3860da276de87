"""Tenancy through /graphql: tenants (members, quotas, usage, audit log), sharing (policies, requests, grants) and
every tenancy write — scoped and permitted as the REST API, isolated between tenants, without N+1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from graphql_relay import to_global_id

from apps.consumption.services import create_api_key
from apps.tenancy import sharing
from apps.tenancy.audit import record_audit
from apps.tenancy.models import (
    AccessRequestStatus,
    GrantStatus,
    QuotaOverride,
    Role,
    SharingPolicy,
    Tenant,
    TenantStatus,
    Tier,
    Visibility,
)
from tests.apps.gateway.support import data, gql, logged_in, with_key
from tests.apps.tenancy.api_support import World, build_world, unregister_widgets
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

ERRORS = "errors { field message code }"

TENANT = """
query($slug: String!) {
  tenant(slug: $slug) {
    id slug tier myRole
    members(first: 10) { totalCount edges { node { id username role } } }
    auditLog(first: 50) { totalCount edges { node { id action actor } } }
    quotas { quotaType limit }
    usage { tenant timezone quotas { quotaType periodStart used limit } }
  }
}
"""
TENANTS = """
query($status: String, $tier: String) {
  tenants(status: $status, tier: $tier) { totalCount edges { node { slug } } }
}
"""
NESTED_TENANTS = """
query($first: Int!) {
  tenants(first: $first) {
    edges { node {
      slug
      members(first: 1) { totalCount edges { node { username } } }
      auditLog(first: 1) { totalCount edges { node { action } } }
    } }
  }
}
"""
NODE = "query($id: ID!) { node(id: $id) { id __typename } }"
POLICIES = """
query($visibility: String, $first: Int) {
  sharingPolicies(visibility: $visibility, first: $first) {
    totalCount
    edges { node {
      id owner resourceType resourceId visibility allowedTenants blockedTenants regions requiresApproval
      maxConsumers providerSharePercent platformFeePercent
    } }
  }
}
"""
REQUESTS = """
query($direction: String, $status: String, $first: Int) {
  accessRequests(direction: $direction, status: $status, first: $first) {
    totalCount
    edges { node {
      id policyId resourceType resourceId provider consumer requestedBy decidedBy status message
      grant { id status provider consumer resourceId }
    } }
  }
}
"""
GRANTS = """
query($direction: String, $first: Int) {
  accessGrants(direction: $direction, first: $first) {
    totalCount
    edges { node { id policyId resourceType resourceId provider consumer status requestId } }
  }
}
"""
TENANT_CREATE = f"""
mutation($name: String!, $slug: String!, $tier: String) {{
  tenantCreate(name: $name, slug: $slug, tier: $tier) {{ tenant {{ slug tier myRole }} {ERRORS} }}
}}
"""
TENANT_UPDATE = f"""
mutation($slug: String!, $name: String, $timezone: String) {{
  tenantUpdate(slug: $slug, name: $name, timezone: $timezone) {{ tenant {{ name timezone }} {ERRORS} }}
}}
"""
TENANT_CHANGE_TIER = f"""
mutation($slug: String!, $tier: String!) {{
  tenantChangeTier(slug: $slug, tier: $tier) {{ tenant {{ slug tier }} {ERRORS} }}
}}
"""
TENANT_SUSPEND = f"""
mutation($slug: String!, $reason: String!) {{
  tenantSuspend(slug: $slug, reason: $reason) {{ tenant {{ slug status suspensionReason }} {ERRORS} }}
}}
"""
TENANT_REACTIVATE = f"""
mutation($slug: String!) {{ tenantReactivate(slug: $slug) {{ tenant {{ slug status }} {ERRORS} }} }}
"""
TENANT_DEACTIVATE = f"""
mutation($slug: String!) {{ tenantDeactivate(slug: $slug) {{ tenant {{ slug status }} {ERRORS} }} }}
"""
MEMBER_ROLE_CHANGE = f"""
mutation($id: ID!, $role: String!) {{ memberRoleChange(memberId: $id, role: $role) {{ member {{ role }} {ERRORS} }} }}
"""
MEMBER_REMOVE = f"mutation($id: ID!) {{ memberRemove(memberId: $id) {{ ok {ERRORS} }} }}"
QUOTA_OVERRIDE_SET = f"""
mutation($slug: String!, $type: String!, $limit: Decimal!, $action: String) {{
  quotaOverrideSet(tenantSlug: $slug, quotaType: $type, limit: $limit, action: $action) {{
    quota {{ quotaType limit action }} {ERRORS}
  }}
}}
"""
QUOTA_OVERRIDE_DELETE = f"""
mutation($slug: String!, $type: String!) {{
  quotaOverrideDelete(tenantSlug: $slug, quotaType: $type) {{ ok quota {{ quotaType limit }} {ERRORS} }}
}}
"""
POLICY_CREATE = f"""
mutation($type: String!, $id: String!, $visibility: String, $allowed: [String!], $approval: Boolean,
         $share: Decimal, $fee: Decimal) {{
  sharingPolicyCreate(resourceType: $type, resourceId: $id, visibility: $visibility, allowedTenants: $allowed,
                      requiresApproval: $approval, providerSharePercent: $share, platformFeePercent: $fee) {{
    policy {{ id owner resourceId visibility allowedTenants requiresApproval providerSharePercent }} {ERRORS}
  }}
}}
"""
POLICY_UPDATE = f"""
mutation($id: ID!, $maxConsumers: Int, $blocked: [String!]) {{
  sharingPolicyUpdate(id: $id, maxConsumers: $maxConsumers, blockedTenants: $blocked) {{
    policy {{ id maxConsumers blockedTenants }} {ERRORS}
  }}
}}
"""
REQUEST_CREATE = f"""
mutation($policy: ID!, $message: String) {{
  accessRequestCreate(policyId: $policy, message: $message) {{
    accessRequest {{ id status consumer provider message grant {{ id }} }} {ERRORS}
  }}
}}
"""
REQUEST_APPROVE = f"""
mutation($id: ID!, $note: String) {{
  accessRequestApprove(id: $id, note: $note) {{
    grant {{ id status consumer }} accessRequest {{ id status decidedBy }} {ERRORS}
  }}
}}
"""
REQUEST_REJECT = f"""
mutation($id: ID!, $note: String) {{
  accessRequestReject(id: $id, note: $note) {{ accessRequest {{ id status decisionNote }} {ERRORS} }}
}}
"""
GRANT_REVOKE = f"mutation($id: ID!) {{ accessGrantRevoke(id: $id) {{ grant {{ id status }} {ERRORS} }} }}"


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def gid(type_name: str, obj: Any) -> str:
    return to_global_id(type_name, str(obj.pk))


def payload(response: Any, name: str) -> dict[str, Any]:
    """A mutation's payload (no top-level errors allowed)."""
    return data(response)[name]


def codes(result: dict[str, Any]) -> list[str]:
    return [error["code"] for error in result["errors"]]


def key_client(tenant: Tenant, actor: Any, *scopes: str) -> Client:
    _, secret = create_api_key(tenant=tenant, actor=actor, name="gql", scopes=list(scopes))
    return with_key(secret)


# --- Tenants: members, quotas, usage, audit log --------------------------------------------------------------


def test_members_read_their_tenant_with_members_quotas_usage_and_audit_log(world: World) -> None:
    # when
    tenant = data(gql(logged_in(world.owner), TENANT, {"slug": "acme"}))["tenant"]

    # then
    assert tenant["myRole"] == Role.OWNER
    assert tenant["members"]["totalCount"] == 4
    assert {e["node"]["username"] for e in tenant["members"]["edges"]} == {
        "alice",
        "acme-admin",
        "acme-member",
        "acme-viewer",
    }
    assert tenant["auditLog"]["totalCount"] >= 3
    assert "sharing_policy_created" in {e["node"]["action"] for e in tenant["auditLog"]["edges"]}
    assert {q["quotaType"] for q in tenant["quotas"]} >= {"api_requests", "members"}
    assert tenant["usage"]["tenant"] == "acme"
    assert {q["quotaType"] for q in tenant["usage"]["quotas"]} == {"api_requests", "tokens", "spend_usd"}
    assert all(q["periodStart"] for q in tenant["usage"]["quotas"])


def test_the_audit_log_is_for_admins_only(world: World) -> None:
    # when
    as_viewer = data(gql(logged_in(world.viewer), TENANT, {"slug": "acme"}))["tenant"]
    as_admin = data(gql(logged_in(world.admin), TENANT, {"slug": "acme"}))["tenant"]

    # then
    assert as_viewer["members"]["totalCount"] == 4
    assert as_viewer["auditLog"] == {"totalCount": 0, "edges": []}
    assert as_admin["auditLog"]["totalCount"] > 0


def test_tenants_filter_as_rest_does(world: World) -> None:
    # given
    MembershipFactory(tenant=world.globex, user=world.owner, role=Role.VIEWER)
    world.globex.tier = Tier.ENTERPRISE
    world.globex.save()
    client = logged_in(world.owner)

    # when
    by_tier = data(gql(client, TENANTS, {"tier": Tier.ENTERPRISE}))["tenants"]
    bad = gql(client, TENANTS, {"status": "sleeping"}).json()

    # then
    assert [e["node"]["slug"] for e in by_tier["edges"]] == ["globex"]
    assert bad["errors"][0]["extensions"]["code"] == "validation_error"


def test_anonymous_callers_read_no_tenants(world: World) -> None:
    body = gql(Client(), TENANTS).json()
    assert body["errors"][0]["extensions"]["code"] == "authentication_error"


# --- Sharing queries -----------------------------------------------------------------------------------------


def test_members_list_the_policies_of_their_tenant(world: World) -> None:
    # when
    every = data(gql(logged_in(world.viewer), POLICIES))["sharingPolicies"]
    private = data(gql(logged_in(world.viewer), POLICIES, {"visibility": Visibility.PRIVATE}))["sharingPolicies"]

    # then
    assert every["totalCount"] == SharingPolicy.objects.filter(owner=world.acme).count() == 3
    assert {e["node"]["owner"] for e in every["edges"]} == {"acme"}
    assert [e["node"]["id"] for e in private["edges"]] == [gid("SharingPolicyNode", world.private_policy)]
    assert private["edges"][0]["node"]["providerSharePercent"] == "80"


def test_requests_and_grants_are_listed_on_both_sides(world: World) -> None:
    # when
    provider = logged_in(world.owner)
    consumer = logged_in(world.carol)
    received = data(gql(provider, REQUESTS, {"direction": "received"}))["accessRequests"]
    made = data(gql(consumer, REQUESTS, {"direction": "made", "status": AccessRequestStatus.PENDING}))
    given = data(gql(provider, GRANTS, {"direction": "given"}))["accessGrants"]
    held = data(gql(consumer, GRANTS))["accessGrants"]

    # then
    assert received["totalCount"] == 2
    pending = made["accessRequests"]["edges"]
    assert [e["node"]["id"] for e in pending] == [gid("AccessRequestNode", world.request)]
    assert pending[0]["node"] | {"id": None} == {
        "id": None,
        "policyId": to_global_id("SharingPolicyNode", str(world.request.policy_id)),
        "resourceType": "widget",
        "resourceId": "acme:w3",
        "provider": "acme",
        "consumer": "initech",
        "requestedBy": "carol",
        "decidedBy": None,
        "status": "pending",
        "message": "please",
        "grant": None,
    }
    approved = next(e["node"] for e in received["edges"] if e["node"]["status"] == AccessRequestStatus.APPROVED)
    assert approved["grant"] == {
        "id": gid("AccessGrantNode", world.grant),
        "status": "active",
        "provider": "acme",
        "consumer": "initech",
        "resourceId": "acme:w1",
    }
    assert [e["node"]["id"] for e in given["edges"]] == [e["node"]["id"] for e in held["edges"]]
    assert held["edges"][0]["node"]["requestId"] == to_global_id("AccessRequestNode", str(world.grant.request_id))


def test_sharing_objects_resolve_by_node_id_for_their_parties(world: World) -> None:
    for user, obj, type_name in [
        (world.viewer, world.policy, "SharingPolicyNode"),
        (world.carol, world.request, "AccessRequestNode"),
        (world.owner, world.request, "AccessRequestNode"),
        (world.carol, world.grant, "AccessGrantNode"),
    ]:
        node = data(gql(logged_in(user), NODE, {"id": gid(type_name, obj)}))["node"]
        assert node == {"id": gid(type_name, obj), "__typename": type_name}


def test_callers_of_several_tenants_name_the_acting_one(world: World) -> None:
    # given
    MembershipFactory(tenant=world.initech, user=world.owner, role=Role.VIEWER)
    client = logged_in(world.owner)

    # when
    ambiguous = gql(client, POLICIES).json()
    as_initech = data(gql(client, POLICIES, HTTP_X_TENANT="initech"))["sharingPolicies"]
    foreign = gql(client, POLICIES, HTTP_X_TENANT="globex").json()

    # then
    assert ambiguous["errors"][0]["extensions"]["code"] == "validation_error"
    assert as_initech["totalCount"] == 0
    assert foreign["errors"][0]["extensions"]["code"] == "authorization_error"


# --- Isolation -------------------------------------------------------------------------------------------------


def test_another_tenant_sees_nothing_of_a_tenant_by_list_node_or_nesting(world: World) -> None:
    # given
    owner_view = data(gql(logged_in(world.owner), TENANT, {"slug": "acme"}))["tenant"]
    ids = [
        owner_view["id"],
        owner_view["members"]["edges"][0]["node"]["id"],
        owner_view["auditLog"]["edges"][0]["node"]["id"],
        gid("SharingPolicyNode", world.policy),
        gid("AccessRequestNode", world.request),
        gid("AccessGrantNode", world.grant),
    ]
    globex_admin_key = key_client(world.globex, world.bob, "admin")

    for client in (logged_in(world.bob), globex_admin_key):
        # when
        tenant = data(gql(client, TENANT, {"slug": "acme"}))["tenant"]
        listed = data(gql(client, NESTED_TENANTS, {"first": 10}))["tenants"]["edges"]
        nodes = [data(gql(client, NODE, {"id": node_id}))["node"] for node_id in ids]
        policies = data(gql(client, POLICIES))["sharingPolicies"]
        requests = data(gql(client, REQUESTS))["accessRequests"]
        grants = data(gql(client, GRANTS))["accessGrants"]

        # then
        assert tenant is None
        assert [e["node"]["slug"] for e in listed] == ["globex"]
        assert {e["node"]["members"]["edges"][0]["node"]["username"] for e in listed} <= {"bob", "gina"}
        assert nodes == [None] * len(ids)
        assert policies["totalCount"] == requests["totalCount"] == grants["totalCount"] == 0


def test_another_tenant_cannot_change_a_tenants_objects(world: World) -> None:
    # given
    bob = logged_in(world.bob)
    member_id = gid("MembershipNode", world.member_membership)

    # when
    results = [
        payload(gql(bob, TENANT_UPDATE, {"slug": "acme", "name": "Mine"}), "tenantUpdate"),
        payload(gql(bob, TENANT_CHANGE_TIER, {"slug": "acme", "tier": "free"}), "tenantChangeTier"),
        payload(gql(bob, TENANT_DEACTIVATE, {"slug": "acme"}), "tenantDeactivate"),
        payload(gql(bob, MEMBER_ROLE_CHANGE, {"id": member_id, "role": "admin"}), "memberRoleChange"),
        payload(gql(bob, MEMBER_REMOVE, {"id": member_id}), "memberRemove"),
        payload(
            gql(bob, POLICY_UPDATE, {"id": gid("SharingPolicyNode", world.policy), "maxConsumers": 1}),
            "sharingPolicyUpdate",
        ),
        payload(gql(bob, REQUEST_APPROVE, {"id": gid("AccessRequestNode", world.request)}), "accessRequestApprove"),
        payload(gql(bob, REQUEST_REJECT, {"id": gid("AccessRequestNode", world.request)}), "accessRequestReject"),
        payload(gql(bob, GRANT_REVOKE, {"id": gid("AccessGrantNode", world.grant)}), "accessGrantRevoke"),
        payload(
            gql(bob, POLICY_CREATE, {"type": "widget", "id": "acme:w9", "visibility": "public"}),
            "sharingPolicyCreate",
        ),
    ]

    # then
    assert [codes(result) for result in results] == [["not_found"]] * len(results)
    world.acme.refresh_from_db()
    world.request.refresh_from_db()
    world.grant.refresh_from_db()
    assert (world.acme.name, world.acme.tier, world.acme.status) == ("Acme", Tier.PROFESSIONAL, TenantStatus.ACTIVE)
    assert world.request.status == AccessRequestStatus.PENDING
    assert world.grant.status == GrantStatus.ACTIVE


# --- Tenant mutations --------------------------------------------------------------------------------------------


def test_users_create_tenants_but_api_keys_do_not(world: World) -> None:
    # when
    created = payload(gql(logged_in(world.bob), TENANT_CREATE, {"name": "Bob Co", "slug": "bob-co"}), "tenantCreate")
    invalid = payload(
        gql(logged_in(world.bob), TENANT_CREATE, {"name": "X", "slug": "bob-x", "tier": "platinum"}), "tenantCreate"
    )
    by_key = payload(
        gql(key_client(world.globex, world.bob, "admin"), TENANT_CREATE, {"name": "K", "slug": "by-key"}),
        "tenantCreate",
    )

    # then
    assert created["errors"] == [] and created["tenant"]["slug"] == "bob-co" and created["tenant"]["myRole"] == "owner"
    assert invalid["tenant"] is None and invalid["errors"][0]["field"] == "tier"
    assert codes(by_key) == ["session_required"]
    assert not Tenant.objects.filter(slug__in=["bob-x", "by-key"]).exists()


def test_admins_update_the_profile_and_owners_change_the_tier(world: World) -> None:
    # when
    updated = payload(
        gql(logged_in(world.admin), TENANT_UPDATE, {"slug": "acme", "name": "Acme Ltd", "timezone": "Europe/Paris"}),
        "tenantUpdate",
    )
    empty = payload(gql(logged_in(world.admin), TENANT_UPDATE, {"slug": "acme"}), "tenantUpdate")
    by_admin = payload(
        gql(logged_in(world.admin), TENANT_CHANGE_TIER, {"slug": "acme", "tier": "free"}), "tenantChangeTier"
    )
    by_owner = payload(
        gql(logged_in(world.owner), TENANT_CHANGE_TIER, {"slug": "acme", "tier": "enterprise"}), "tenantChangeTier"
    )

    # then
    assert updated == {"tenant": {"name": "Acme Ltd", "timezone": "Europe/Paris"}, "errors": []}
    assert codes(empty) == ["validation_error"]
    assert codes(by_admin) == ["authorization_error"]
    assert by_owner == {"tenant": {"slug": "acme", "tier": "enterprise"}, "errors": []}


def test_staff_suspend_and_reactivate_tenants_and_others_may_not(world: World) -> None:
    # given
    staff = logged_in(world.staff)

    # when
    refused = [
        payload(gql(logged_in(world.owner), TENANT_SUSPEND, {"slug": "acme", "reason": "x"}), "tenantSuspend"),
        payload(gql(logged_in(world.owner), TENANT_REACTIVATE, {"slug": "acme"}), "tenantReactivate"),
        payload(
            gql(key_client(world.acme, world.owner, "admin"), TENANT_SUSPEND, {"slug": "acme", "reason": "x"}),
            "tenantSuspend",
        ),
    ]
    blank_reason = payload(gql(staff, TENANT_SUSPEND, {"slug": "acme", "reason": ""}), "tenantSuspend")
    suspended = payload(gql(staff, TENANT_SUSPEND, {"slug": "acme", "reason": "unpaid"}), "tenantSuspend")
    reactivated = payload(gql(staff, TENANT_REACTIVATE, {"slug": "acme"}), "tenantReactivate")
    again = payload(gql(staff, TENANT_REACTIVATE, {"slug": "acme"}), "tenantReactivate")

    # then
    assert [codes(result) for result in refused] == [["authorization_error"]] * 3
    assert blank_reason["errors"][0]["field"] == "reason"
    assert suspended == {
        "tenant": {"slug": "acme", "status": "suspended", "suspensionReason": "unpaid"},
        "errors": [],
    }
    assert reactivated["tenant"]["status"] == "active"
    assert again["tenant"] is None and codes(again) == ["invalid_transition"]


def test_owners_deactivate_their_tenant_for_good(world: World) -> None:
    # when
    by_admin = payload(gql(logged_in(world.admin), TENANT_DEACTIVATE, {"slug": "acme"}), "tenantDeactivate")
    by_owner = payload(gql(logged_in(world.owner), TENANT_DEACTIVATE, {"slug": "acme"}), "tenantDeactivate")
    reactivated = payload(gql(logged_in(world.staff), TENANT_REACTIVATE, {"slug": "acme"}), "tenantReactivate")

    # then
    assert codes(by_admin) == ["authorization_error"]
    assert by_owner == {"tenant": {"slug": "acme", "status": "deactivated"}, "errors": []}
    assert codes(reactivated) == ["invalid_transition"]
    assert reactivated["errors"][0]["field"] is None


def test_member_roles_change_and_members_leave_with_node_ids(world: World) -> None:
    # given
    client = logged_in(world.owner)
    member_id = gid("MembershipNode", world.member_membership)

    # when
    promoted = payload(gql(client, MEMBER_ROLE_CHANGE, {"id": member_id, "role": "admin"}), "memberRoleChange")
    bad_role = payload(gql(client, MEMBER_ROLE_CHANGE, {"id": member_id, "role": "emperor"}), "memberRoleChange")
    last_owner = payload(
        gql(client, MEMBER_ROLE_CHANGE, {"id": str(world.owner_membership.pk), "role": "admin"}), "memberRoleChange"
    )
    wrong_type = payload(gql(client, MEMBER_REMOVE, {"id": gid("TenantNode", world.acme)}), "memberRemove")
    removed = payload(gql(client, MEMBER_REMOVE, {"id": member_id}), "memberRemove")

    # then
    assert promoted == {"member": {"role": "admin"}, "errors": []}
    assert bad_role["errors"][0]["field"] == "role"
    assert codes(last_owner) == ["last_owner"]
    assert wrong_type == {
        "ok": False,
        "errors": [{"field": None, "message": wrong_type["errors"][0]["message"], "code": "not_found"}],
    }
    assert removed == {"ok": True, "errors": []}


# --- Quota overrides ---------------------------------------------------------------------------------------------


def test_staff_override_quotas_and_clear_the_overrides(world: World) -> None:
    # given
    staff = logged_in(world.staff)
    values = {"slug": "acme", "type": "api_requests", "limit": "250000", "action": "block"}

    # when
    refused = payload(gql(logged_in(world.owner), QUOTA_OVERRIDE_SET, values), "quotaOverrideSet")
    invalid = payload(gql(staff, QUOTA_OVERRIDE_SET, {**values, "limit": "-5"}), "quotaOverrideSet")
    unknown = payload(gql(staff, QUOTA_OVERRIDE_SET, {**values, "type": "parrots"}), "quotaOverrideSet")
    overridden = payload(gql(staff, QUOTA_OVERRIDE_SET, values), "quotaOverrideSet")
    refused_clear = payload(
        gql(logged_in(world.owner), QUOTA_OVERRIDE_DELETE, values | {"limit": None}), "quotaOverrideDelete"
    )
    cleared = payload(
        gql(staff, QUOTA_OVERRIDE_DELETE, {"slug": "acme", "type": "api_requests"}), "quotaOverrideDelete"
    )
    nothing_to_clear = payload(
        gql(staff, QUOTA_OVERRIDE_DELETE, {"slug": "acme", "type": "api_requests"}), "quotaOverrideDelete"
    )

    # then
    assert codes(refused) == ["authorization_error"]
    assert invalid["errors"][0]["field"] == "limit"
    assert unknown["errors"][0]["field"] == "quota_type"
    assert overridden == {"quota": {"quotaType": "api_requests", "limit": "250000", "action": "block"}, "errors": []}
    assert codes(refused_clear) == ["authorization_error"]
    assert cleared["ok"] is True and cleared["quota"]["limit"] == "1000000"
    assert not QuotaOverride.objects.filter(tenant=world.acme).exists()
    assert nothing_to_clear["ok"] is False and codes(nothing_to_clear) == ["not_found"]


# --- Sharing mutations -------------------------------------------------------------------------------------------


def test_admins_share_resources_and_change_policies(world: World) -> None:
    # given
    admin = logged_in(world.admin)
    values = {"type": "widget", "id": "acme:w9", "visibility": "tenant", "allowed": ["initech"], "approval": True}

    # when
    by_member = payload(gql(logged_in(world.member), POLICY_CREATE, values), "sharingPolicyCreate")
    invalid = payload(gql(admin, POLICY_CREATE, {**values, "share": "150"}), "sharingPolicyCreate")
    unbalanced = payload(gql(admin, POLICY_CREATE, {**values, "share": "70", "fee": "20"}), "sharingPolicyCreate")
    created = payload(gql(admin, POLICY_CREATE, values), "sharingPolicyCreate")
    duplicate = payload(gql(admin, POLICY_CREATE, values), "sharingPolicyCreate")
    updated = payload(
        gql(admin, POLICY_UPDATE, {"id": created["policy"]["id"], "maxConsumers": 2, "blocked": ["globex"]}),
        "sharingPolicyUpdate",
    )
    bad_update = payload(
        gql(admin, POLICY_UPDATE, {"id": created["policy"]["id"], "maxConsumers": 0}), "sharingPolicyUpdate"
    )

    # then
    assert codes(by_member) == ["authorization_error"]
    assert invalid["policy"] is None and invalid["errors"][0]["field"] == "provider_share_percent"
    assert unbalanced["errors"][0]["field"] == "platform_fee_percent"
    assert created["errors"] == []
    assert created["policy"] | {"id": None} == {
        "id": None,
        "owner": "acme",
        "resourceId": "acme:w9",
        "visibility": "tenant",
        "allowedTenants": ["initech"],
        "requiresApproval": True,
        "providerSharePercent": "80",
    }
    assert codes(duplicate) == ["conflict"]
    assert updated == {
        "policy": {"id": created["policy"]["id"], "maxConsumers": 2, "blockedTenants": ["globex"]},
        "errors": [],
    }
    assert bad_update["errors"][0]["field"] == "max_consumers"


def test_consumers_ask_and_providers_approve_or_reject(world: World) -> None:
    # given
    gated = SharingPolicy.objects.get(resource_id="acme:w3")
    bob, provider = logged_in(world.bob), logged_in(world.owner)

    # when
    by_member = payload(
        gql(logged_in(world.globex_member), REQUEST_CREATE, {"policy": gid("SharingPolicyNode", gated)}),
        "accessRequestCreate",
    )
    bad_id = payload(gql(bob, REQUEST_CREATE, {"policy": "nonsense"}), "accessRequestCreate")
    private = payload(gql(bob, REQUEST_CREATE, {"policy": str(world.private_policy.pk)}), "accessRequestCreate")
    asked = payload(
        gql(bob, REQUEST_CREATE, {"policy": gid("SharingPolicyNode", gated), "message": "hi"}), "accessRequestCreate"
    )
    approved = payload(
        gql(provider, REQUEST_APPROVE, {"id": asked["accessRequest"]["id"], "note": "ok"}), "accessRequestApprove"
    )
    approved_again = payload(
        gql(provider, REQUEST_APPROVE, {"id": asked["accessRequest"]["id"]}), "accessRequestApprove"
    )
    by_consumer = payload(
        gql(logged_in(world.carol), REQUEST_REJECT, {"id": gid("AccessRequestNode", world.request)}),
        "accessRequestReject",
    )
    rejected = payload(
        gql(provider, REQUEST_REJECT, {"id": gid("AccessRequestNode", world.request), "note": "no"}),
        "accessRequestReject",
    )

    # then
    assert codes(by_member) == ["authorization_error"]
    assert bad_id["errors"][0]["field"] == "policy"
    assert codes(private) == ["not_found"]
    assert asked["errors"] == [] and asked["accessRequest"] | {"id": None} == {
        "id": None,
        "status": "pending",
        "consumer": "globex",
        "provider": "acme",
        "message": "hi",
        "grant": None,
    }
    assert approved["errors"] == []
    assert approved["grant"]["status"] == "active" and approved["grant"]["consumer"] == "globex"
    assert approved["accessRequest"] == {"id": asked["accessRequest"]["id"], "status": "approved", "decidedBy": "alice"}
    assert approved_again["grant"] is None and codes(approved_again) == ["invalid_transition"]
    assert codes(by_consumer) == ["authorization_error"]
    assert rejected == {
        "accessRequest": {"id": gid("AccessRequestNode", world.request), "status": "rejected", "decisionNote": "no"},
        "errors": [],
    }


def test_requests_without_approval_are_granted_at_once(world: World) -> None:
    # when
    asked = payload(
        gql(logged_in(world.bob), REQUEST_CREATE, {"policy": gid("SharingPolicyNode", world.policy)}),
        "accessRequestCreate",
    )

    # then
    assert asked["accessRequest"]["status"] == "approved"
    assert asked["accessRequest"]["grant"]["id"].startswith(to_global_id("AccessGrantNode", "")[:4])


def test_providers_and_consumers_revoke_grants(world: World) -> None:
    # given
    grant_id = gid("AccessGrantNode", world.grant)

    # when
    by_viewer = payload(gql(logged_in(world.viewer), GRANT_REVOKE, {"id": grant_id}), "accessGrantRevoke")
    revoked = payload(gql(logged_in(world.carol), GRANT_REVOKE, {"id": grant_id}), "accessGrantRevoke")
    again = payload(gql(logged_in(world.owner), GRANT_REVOKE, {"id": grant_id}), "accessGrantRevoke")

    # then
    assert codes(by_viewer) == ["authorization_error"]
    assert revoked == {"grant": {"id": grant_id, "status": "revoked"}, "errors": []}
    assert codes(again) == ["invalid_transition"]


def test_api_keys_administer_sharing_with_the_admin_scope_only(world: World) -> None:
    # given
    values = {"type": "widget", "id": "acme:w8", "visibility": "public"}

    # when
    publish = payload(gql(key_client(world.acme, world.owner, "publish"), POLICY_CREATE, values), "sharingPolicyCreate")
    read = gql(key_client(world.acme, world.owner, "read"), POLICY_CREATE, values).json()
    admin = payload(gql(key_client(world.acme, world.owner, "admin"), POLICY_CREATE, values), "sharingPolicyCreate")
    listed = data(gql(key_client(world.acme, world.owner, "read"), POLICIES))["sharingPolicies"]

    # then
    assert codes(publish) == ["insufficient_scope"]
    assert read["errors"][0]["extensions"]["code"] == "insufficient_scope"
    assert admin["errors"] == [] and admin["policy"]["owner"] == "acme"
    assert listed["totalCount"] == 4


# --- No N+1 ------------------------------------------------------------------------------------------------------


def _queries(client: Client, query: str, variables: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    gql(client, "{ apiVersion }")  # the session is loaded once
    with CaptureQueriesContext(connection) as captured:
        body = data(gql(client, query, variables))
    return len(captured.captured_queries), body


def test_tenants_with_members_and_audit_logs_run_in_constant_queries(db: Any) -> None:
    # given
    user = UserFactory(username="many")
    for index in range(50):
        tenant = TenantFactory(slug=f"t-{index:02d}")
        MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)
        MembershipFactory(tenant=tenant, role=Role.MEMBER)
        for action in ("one", "two", "three"):
            record_audit(action=action, tenant=tenant, actor=user, obj=tenant)
    client = logged_in(user)

    # when
    few, few_body = _queries(client, NESTED_TENANTS, {"first": 5})
    many, many_body = _queries(client, NESTED_TENANTS, {"first": 50})

    # then
    edges = many_body["tenants"]["edges"]
    assert len(few_body["tenants"]["edges"]) == 5 and len(edges) == 50
    assert all(e["node"]["members"]["totalCount"] == 2 and len(e["node"]["members"]["edges"]) == 1 for e in edges)
    assert all(e["node"]["auditLog"]["totalCount"] == 3 for e in edges)
    assert {e["node"]["auditLog"]["edges"][0]["node"]["action"] for e in edges} == {"three"}
    assert few == many


def test_nested_pages_follow_their_cursors(world: World) -> None:
    # given
    query = """
    query($after: String) {
      tenant(slug: "acme") { members(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor }
                                                                 edges { node { username } } } }
    }
    """
    client = logged_in(world.owner)

    # when
    first = data(gql(client, query))["tenant"]["members"]
    second = data(gql(client, query, {"after": first["pageInfo"]["endCursor"]}))["tenant"]["members"]

    # then
    assert first["pageInfo"]["hasNextPage"] is True and second["pageInfo"]["hasNextPage"] is False
    names = [e["node"]["username"] for e in first["edges"] + second["edges"]]
    assert sorted(names) == ["acme-admin", "acme-member", "acme-viewer", "alice"]


def test_sharing_lists_run_in_constant_queries(world: World) -> None:
    # given
    for index in range(10):
        policy = sharing.create_policy(
            resource_type="widget",
            resource_id=f"acme:n{index}",
            actor=world.owner,
            visibility=Visibility.MARKETPLACE,
            requires_approval=False,
            allowed_tenants=["initech"],
            blocked_tenants=["globex"],
        )
        sharing.request_access(policy=policy, consumer=world.initech, actor=world.carol)
    provider, consumer = logged_in(world.owner), logged_in(world.carol)

    # when
    counts = {
        name: (_queries(client, query, {"first": 1})[0], _queries(client, query, {"first": 12}))
        for name, client, query in [
            ("policies", provider, POLICIES),
            ("requests", consumer, REQUESTS),
            ("grants", consumer, GRANTS),
        ]
    }

    # then
    assert counts["policies"][1][1]["sharingPolicies"]["totalCount"] == 13
    assert counts["requests"][1][1]["accessRequests"]["totalCount"] == 12
    assert counts["grants"][1][1]["accessGrants"]["totalCount"] == 11
    assert {name: few for name, (few, _) in counts.items()} == {name: many for name, (_, (many, _)) in counts.items()}
