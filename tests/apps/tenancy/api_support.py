"""Helpers of the tenancy REST API tests: a three-tenant world, logged-in clients and error-envelope checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from rest_framework.test import APIClient

from apps.tenancy import sharing
from apps.tenancy.models import AccessRequest, Grant, Membership, Role, SharingPolicy, Tenant, Tier, Visibility
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

API = "/api/v1"
RESOURCE_TYPE = "widget"


def widget_owner(resource_id: str) -> Tenant | None:
    """Owner of a test widget: the tenant whose slug prefixes its id (`acme:w1` belongs to `acme`)."""
    return Tenant.objects.filter(slug=resource_id.split(":")[0]).first()


def register_widgets() -> None:
    sharing.register_resource_type(RESOURCE_TYPE, widget_owner)


def unregister_widgets() -> None:
    sharing._resource_types.pop(RESOURCE_TYPE, None)


@dataclass
class World:
    """Tenant A (`acme`, the provider, one user per role), B (`globex`, the outsider), C (`initech`, a consumer
    of A), and the sharing objects between A and C that B must never reach."""

    acme: Tenant
    globex: Tenant
    initech: Tenant
    owner: Any
    admin: Any
    member: Any
    viewer: Any
    bob: Any
    globex_member: Any
    carol: Any
    staff: Any
    owner_membership: Membership
    member_membership: Membership
    policy: SharingPolicy
    private_policy: SharingPolicy
    request: AccessRequest
    grant: Grant


def build_world() -> World:
    """Create the world through factories and services (so the audit log has entries of A and C)."""
    register_widgets()
    acme = TenantFactory(slug="acme", name="Acme", tier=Tier.PROFESSIONAL)
    globex = TenantFactory(slug="globex", name="Globex", tier=Tier.PROFESSIONAL)
    initech = TenantFactory(slug="initech", name="Initech", tier=Tier.PROFESSIONAL)
    owner = UserFactory(username="alice")
    memberships = {
        role: MembershipFactory(tenant=acme, user=UserFactory(username=f"acme-{role}"), role=role)
        for role in (Role.ADMIN, Role.MEMBER, Role.VIEWER)
    }
    owner_membership = MembershipFactory(tenant=acme, user=owner, role=Role.OWNER)
    bob = MembershipFactory(tenant=globex, user=UserFactory(username="bob"), role=Role.OWNER).user
    globex_member = MembershipFactory(tenant=globex, user=UserFactory(username="gina"), role=Role.MEMBER).user
    carol = MembershipFactory(tenant=initech, user=UserFactory(username="carol"), role=Role.OWNER).user
    staff = UserFactory(username="operator", is_staff=True)
    policy = sharing.create_policy(
        resource_type=RESOURCE_TYPE,
        resource_id="acme:w1",
        actor=owner,
        visibility=Visibility.MARKETPLACE,
        requires_approval=False,
    )
    private_policy = sharing.create_policy(
        resource_type=RESOURCE_TYPE, resource_id="acme:w2", actor=owner, visibility=Visibility.PRIVATE
    )
    gated = sharing.create_policy(
        resource_type=RESOURCE_TYPE,
        resource_id="acme:w3",
        actor=owner,
        visibility=Visibility.MARKETPLACE,
        requires_approval=True,
    )
    grant = sharing.request_access(policy=policy, consumer=initech, actor=carol).grant
    request = sharing.request_access(policy=gated, consumer=initech, actor=carol, message="please")
    return World(
        acme=acme,
        globex=globex,
        initech=initech,
        owner=owner,
        admin=memberships[Role.ADMIN].user,
        member=memberships[Role.MEMBER].user,
        viewer=memberships[Role.VIEWER].user,
        bob=bob,
        globex_member=globex_member,
        carol=carol,
        staff=staff,
        owner_membership=owner_membership,
        member_membership=memberships[Role.MEMBER],
        policy=policy,
        private_policy=private_policy,
        request=request,
        grant=grant,
    )


def client_for(user: AbstractBaseUser | None = None, *, tenant: str | None = None) -> APIClient:
    """A client logged in through the session (as browsers and the admin are), optionally sending `X-Tenant`."""
    client = APIClient()
    if user is not None:
        client.force_login(user)
    if tenant is not None:
        client.credentials(HTTP_X_TENANT=tenant)
    return client


def assert_error(
    response: Any, status: int | tuple[int, ...], code: str | None = None, field: str | None = None
) -> dict:
    """The response is the error envelope with `status` (one of them), its `code`, naming `field`."""
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.content)
    body = response.json()
    assert set(body) == {"error", "request_id"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    if field is not None:
        assert field in (body["error"]["details"] or {}).get("fields", {}), body
    return body


def slugs(response: Any, key: str = "slug") -> set[str]:
    return {row[key] for row in response.json()["results"]}
