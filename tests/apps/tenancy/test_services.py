"""Tenant and member services: rules, transitions, audit entries."""

from __future__ import annotations

import pytest

from apps.tenancy import services
from apps.tenancy.exceptions import InvalidTransitionError, LastOwnerError
from apps.tenancy.models import AuditLog, Membership, Role, TenantStatus, Tier
from llm_infra_django.errors import AuthorizationError, ConflictError, QuotaExceededError, ValidationError
from tests.apps.tenancy.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_create_tenant_makes_the_creator_owner_in_trial(owner) -> None:
    tenant = services.create_tenant(name="Globex", slug="globex", owner=owner, tier=Tier.STARTER)
    assert tenant.status == TenantStatus.TRIAL
    assert tenant.trial_ends_at is not None
    assert tenant.is_operational
    assert Membership.objects.get(tenant=tenant, user=owner).role == Role.OWNER
    actions = list(AuditLog.objects.filter(tenant=tenant).values_list("action", flat=True))
    assert sorted(actions) == ["member_added", "tenant_created"]


def test_create_tenant_without_trial_days_is_active(owner) -> None:
    tenant = services.create_tenant(name="Initech", slug="initech", owner=owner, trial_days=0)
    assert tenant.status == TenantStatus.ACTIVE and tenant.trial_ends_at is None


@pytest.mark.parametrize("slug", ["ab", "Acme", "-acme", "acme-", "ac--me", "a" * 64, "admin", "with space", ""])
def test_slug_rules(owner, slug: str) -> None:
    with pytest.raises(ValidationError) as caught:
        services.create_tenant(name="X", slug=slug, owner=owner)
    assert "slug" in caught.value.details["fields"]


def test_duplicate_slug_conflicts(tenant, owner) -> None:
    with pytest.raises(ConflictError):
        services.create_tenant(name="Again", slug="acme", owner=owner)


def test_bad_profile_fields_are_named(owner) -> None:
    with pytest.raises(ValidationError) as caught:
        services.create_tenant(name="", slug="fine-slug", owner=owner, timezone_name="Mars/Base", currency="usd")
    assert set(caught.value.details["fields"]) == {"name", "timezone", "currency"}


def test_update_records_before_and_after(tenant, owner) -> None:
    services.update_tenant(tenant=tenant, actor=owner, name="Acme Corp", timezone="Europe/Paris")
    entry = AuditLog.objects.filter(action="tenant_updated").get()
    assert entry.before == {"name": tenant.name, "timezone": "UTC"}
    assert entry.after == {"name": "Acme Corp", "timezone": "Europe/Paris"}
    assert entry.actor == owner


def test_members_below_admin_cannot_update(tenant) -> None:
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    with pytest.raises(AuthorizationError):
        services.update_tenant(tenant=tenant, actor=viewer, name="Hijacked")


class ServiceAccount:
    """A principal that is no user row and states its own role (as an API key's service account does)."""

    is_authenticated = True

    def __init__(self, tenant_id: object, role: str) -> None:
        self.tenant_roles = {tenant_id: role}

    def __str__(self) -> str:
        return "api-key:ops"


def test_a_service_account_acts_with_the_role_it_states_in_its_tenant_only(tenant, owner) -> None:
    # given
    account = ServiceAccount(tenant.pk, Role.ADMIN)
    other = services.create_tenant(name="Globex", slug="globex", owner=owner)

    # when it changes what an admin may change
    services.update_tenant(tenant=tenant, actor=account, name="By the ops key")

    # then it was allowed, and the audit log names it without a user row
    entry = AuditLog.objects.filter(action="tenant_updated").get()
    assert entry.actor is None and entry.actor_label == "api-key:ops"
    # and an owner's action, or another tenant, stays closed to it
    with pytest.raises(AuthorizationError):
        services.change_tier(tenant=tenant, tier=Tier.PROFESSIONAL, actor=account)
    with pytest.raises(AuthorizationError):
        services.update_tenant(tenant=other, actor=account, name="Hijacked")


def test_change_tier_needs_owner_and_limits_follow(tenant, owner) -> None:
    from apps.tenancy import quotas

    assert quotas.get_limit(tenant, "api_requests").limit == 10_000
    services.change_tier(tenant=tenant, tier=Tier.PROFESSIONAL, actor=owner)
    tenant.refresh_from_db()
    assert quotas.get_limit(tenant, "api_requests").limit == 1_000_000
    assert quotas.get_limit(tenant, "api_requests").action == "alert"
    admin = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    with pytest.raises(AuthorizationError):
        services.change_tier(tenant=tenant, tier=Tier.FREE, actor=admin)


def test_status_transitions(tenant, owner, staff) -> None:
    services.suspend_tenant(tenant=tenant, actor=staff, reason="unpaid invoices")
    tenant.refresh_from_db()
    assert tenant.status == TenantStatus.SUSPENDED and not tenant.is_operational
    services.reactivate_tenant(tenant=tenant, actor=staff)
    services.deactivate_tenant(tenant=tenant, actor=owner)
    with pytest.raises(InvalidTransitionError) as caught:
        services.reactivate_tenant(tenant=tenant, actor=staff)
    assert caught.value.status_code == 409
    assert caught.value.details["allowed"] == []


def test_only_staff_suspend_and_a_reason_is_required(tenant, owner, staff) -> None:
    with pytest.raises(AuthorizationError):
        services.suspend_tenant(tenant=tenant, actor=owner, reason="x")
    with pytest.raises(ValidationError):
        services.suspend_tenant(tenant=tenant, actor=staff, reason="  ")


def test_last_owner_cannot_leave_or_be_demoted(tenant, owner) -> None:
    membership = Membership.objects.get(tenant=tenant, user=owner)
    with pytest.raises(LastOwnerError):
        services.remove_member(membership=membership, actor=owner)
    with pytest.raises(LastOwnerError):
        services.change_member_role(membership=membership, role=Role.ADMIN, actor=owner)
    second = services.add_member(tenant=tenant, user=UserFactory(), role=Role.OWNER, actor=owner)
    services.change_member_role(membership=membership, role=Role.ADMIN, actor=second.user)
    assert Membership.objects.get(pk=membership.pk).role == Role.ADMIN


def test_admins_cannot_make_owners(tenant) -> None:
    admin = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    with pytest.raises(AuthorizationError):
        services.add_member(tenant=tenant, user=UserFactory(), role=Role.OWNER, actor=admin)
    member = services.add_member(tenant=tenant, user=UserFactory(), role=Role.MEMBER, actor=admin)
    assert member.role == Role.MEMBER


def test_members_quota_is_enforced_for_free_tier(tenant, owner) -> None:
    services.add_member(tenant=tenant, user=UserFactory(), role=Role.MEMBER, actor=owner)
    services.add_member(tenant=tenant, user=UserFactory(), role=Role.MEMBER, actor=owner)
    with pytest.raises(QuotaExceededError) as caught:
        services.add_member(tenant=tenant, user=UserFactory(), role=Role.MEMBER, actor=owner)
    assert caught.value.details["quota"] == "members"
    assert Membership.objects.filter(tenant=tenant).count() == 3


def test_member_may_leave(tenant) -> None:
    membership = MembershipFactory(tenant=tenant, role=Role.MEMBER)
    services.remove_member(membership=membership, actor=membership.user)
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert AuditLog.objects.filter(action="member_removed").count() == 1


def test_quota_override_needs_staff_and_applies(tenant, owner, staff) -> None:
    from apps.tenancy import quotas

    with pytest.raises(AuthorizationError):
        services.set_quota_override(tenant=tenant, quota_type="members", limit=10, actor=owner)
    services.set_quota_override(tenant=tenant, quota_type="members", limit=10, actor=staff)
    assert quotas.get_limit(tenant, "members").limit == 10
    services.clear_quota_override(tenant=tenant, quota_type="members", actor=staff)
    assert quotas.get_limit(tenant, "members").limit == 3
    with pytest.raises(ValidationError):
        services.set_quota_override(tenant=tenant, quota_type="members", limit="-5", actor=staff)
    with pytest.raises(ValidationError):
        services.set_quota_override(tenant=tenant, quota_type="nope", limit=1, actor=staff)


def test_audit_log_is_append_only(tenant, owner) -> None:
    services.update_tenant(tenant=tenant, actor=owner, name="Audited")
    entry = AuditLog.objects.filter(tenant=tenant).get()
    entry.action = "rewritten"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditLog.objects.filter(tenant=tenant).update(action="x")
    with pytest.raises(PermissionError):
        AuditLog.objects.filter(tenant=tenant).delete()
