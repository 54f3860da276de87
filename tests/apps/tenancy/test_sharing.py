"""Sharing: policies, conditions, the request → approve/reject → grant → revoke flow, expiry, access checks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.tenancy import sharing
from apps.tenancy.exceptions import CapacityError, InvalidTransitionError
from apps.tenancy.models import AccessRequestStatus, AuditLog, GrantStatus, Role, Tenant, Tier, Visibility
from llm_infra_django.errors import AuthorizationError, ConflictError, PolicyViolationError, ValidationError
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def widget_type():
    sharing.register_resource_type("widget", lambda rid: Tenant.objects.filter(slug=rid.split(":")[0]).first())


@pytest.fixture
def provider(tenant):
    return tenant


@pytest.fixture
def consumer(db):
    consumer = TenantFactory(slug="globex", tier=Tier.STARTER, region="eu")
    consumer.admin = MembershipFactory(tenant=consumer, role=Role.ADMIN, user=UserFactory(username="bob")).user
    return consumer


def make_policy(owner_user, **values):
    defaults = {"visibility": Visibility.MARKETPLACE, "requires_approval": True}
    return sharing.create_policy(
        resource_type="widget", resource_id="acme:w1", actor=owner_user, **{**defaults, **values}
    )


def test_only_the_resource_owner_can_share(provider, owner, consumer) -> None:
    with pytest.raises(AuthorizationError):
        sharing.create_policy(resource_type="widget", resource_id="acme:w1", actor=consumer.admin)
    with pytest.raises(ValidationError) as caught:
        sharing.create_policy(resource_type="gizmo", resource_id="acme:w1", actor=owner)
    assert "resource_type" in caught.value.details["fields"]
    make_policy(owner)
    with pytest.raises(ConflictError):
        make_policy(owner)


def test_policy_values_are_validated(provider, owner) -> None:
    with pytest.raises(ValidationError) as caught:
        make_policy(owner, visibility="everyone", max_consumers=0, provider_share_percent=90)
    assert set(caught.value.details["fields"]) == {"visibility", "max_consumers", "platform_fee_percent"}


def test_request_approve_then_revoke(provider, owner, consumer) -> None:
    policy = make_policy(owner)
    access = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin, message="please")
    assert access.status == AccessRequestStatus.PENDING
    assert not sharing.can_use(consumer, "widget", "acme:w1")
    grant = sharing.approve_request(access=access, actor=owner, note="welcome")
    assert sharing.can_use(consumer, "widget", "acme:w1")
    with pytest.raises(InvalidTransitionError):
        sharing.approve_request(access=access, actor=owner)
    sharing.revoke_grant(grant=grant, actor=owner)
    assert not sharing.can_use(consumer, "widget", "acme:w1")
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {
        "sharing_policy_created",
        "sharing_request_created",
        "sharing_request_approved",
        "sharing_grant_created",
        "sharing_grant_revoked",
    } <= actions


def test_rejection_and_duplicate_pending_request(provider, owner, consumer) -> None:
    policy = make_policy(owner)
    access = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    with pytest.raises(ConflictError):
        sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    sharing.reject_request(access=access, actor=owner, note="not now")
    access.refresh_from_db()
    assert access.status == AccessRequestStatus.REJECTED
    again = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    assert again.status == AccessRequestStatus.PENDING


def test_auto_approval_without_requires_approval(provider, owner, consumer) -> None:
    policy = make_policy(owner, requires_approval=False)
    access = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    assert access.status == AccessRequestStatus.APPROVED
    assert access.grant.status == GrantStatus.ACTIVE


def test_consumer_admin_only_and_not_the_owner(provider, owner, consumer) -> None:
    policy = make_policy(owner)
    viewer = MembershipFactory(tenant=consumer, role=Role.VIEWER).user
    with pytest.raises(AuthorizationError):
        sharing.request_access(policy=policy, consumer=consumer, actor=viewer)
    with pytest.raises(ValidationError):
        sharing.request_access(policy=policy, consumer=provider, actor=owner)


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"tier_minimum": Tier.PROFESSIONAL}, "tier_minimum"),
        ({"regions": ["us"]}, "region"),
        ({"expires_at": timezone.now() - timedelta(days=1)}, "expired"),
    ],
)
def test_conditions_refuse_with_the_violated_rule(provider, owner, consumer, values, rule) -> None:
    policy = make_policy(owner, **values)
    with pytest.raises(PolicyViolationError) as caught:
        sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    assert rule in [v["rule"] for v in caught.value.details["violations"]]


@pytest.mark.parametrize(
    "values",
    [{"visibility": Visibility.PRIVATE}, {"visibility": Visibility.TENANT}, {"blocked_tenants": ["globex"]}],
)
def test_what_a_consumer_may_not_see_is_not_found(provider, owner, consumer, values) -> None:
    from llm_infra_django.errors import NotFoundError

    policy = make_policy(owner, **values)
    with pytest.raises(NotFoundError):
        sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)


def test_tenant_visibility_admits_listed_tenants(provider, owner, consumer) -> None:
    policy = make_policy(owner, visibility=Visibility.TENANT, allowed_tenants=["globex"])
    assert sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)


def test_capacity_is_enforced(provider, owner, consumer) -> None:
    policy = make_policy(owner, max_consumers=1)
    other = TenantFactory(slug="initech")
    other_admin = MembershipFactory(tenant=other, role=Role.ADMIN).user
    first = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    second = sharing.request_access(policy=policy, consumer=other, actor=other_admin)
    sharing.approve_request(access=first, actor=owner)
    with pytest.raises(CapacityError) as caught:
        sharing.approve_request(access=second, actor=owner)
    assert caught.value.status_code == 409
    second.refresh_from_db()
    assert second.status == AccessRequestStatus.PENDING


def test_grants_expire(provider, owner, consumer) -> None:
    policy = make_policy(owner)
    access = sharing.request_access(policy=policy, consumer=consumer, actor=consumer.admin)
    grant = sharing.approve_request(access=access, actor=owner)
    assert sharing.can_use(consumer, "widget", "acme:w1")
    grant.expires_at = timezone.now() - timedelta(seconds=1)
    grant.save()
    assert not sharing.can_use(consumer, "widget", "acme:w1")
    assert sharing.expire_grants() == 1
    grant.refresh_from_db()
    assert grant.status == GrantStatus.EXPIRED
    assert sharing.expire_grants() == 0


def test_public_policy_without_approval_needs_no_grant(provider, owner, consumer) -> None:
    make_policy(owner, visibility=Visibility.PUBLIC, requires_approval=False)
    assert sharing.can_use(consumer, "widget", "acme:w1")
    assert sharing.can_use(provider, "widget", "acme:w1")
