"""State changes of tenants, memberships and quota overrides; each writes an audit entry."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from apps.tenancy import quotas
from apps.tenancy.audit import record_audit, snapshot
from apps.tenancy.conf import tenancy_settings
from apps.tenancy.exceptions import InvalidTransitionError, LastOwnerError
from apps.tenancy.models import (
    ROLE_RANK,
    Membership,
    QuotaAction,
    QuotaOverride,
    QuotaType,
    Role,
    Tenant,
    TenantStatus,
    Tier,
)
from apps.tenancy.signals import tenant_changed
from llm_infra_django.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){1,61}[a-z0-9]$")

STATUS_TRANSITIONS: dict[str, list[str]] = {
    TenantStatus.TRIAL: [TenantStatus.ACTIVE, TenantStatus.SUSPENDED, TenantStatus.DEACTIVATED],
    TenantStatus.ACTIVE: [TenantStatus.SUSPENDED, TenantStatus.DEACTIVATED],
    TenantStatus.SUSPENDED: [TenantStatus.ACTIVE, TenantStatus.DEACTIVATED],
    TenantStatus.DEACTIVATED: [],
}
EDITABLE_FIELDS = ("name", "region", "timezone", "currency")


# --- Rules shared by the services ------------------------------------------------------------------------


def validate_slug(slug: str) -> str:
    """Lower-case letters, digits and single hyphens, 3-63 characters, not reserved, not taken."""
    if not isinstance(slug, str) or not SLUG_RE.match(slug):
        raise ValidationError(
            fields={
                "slug": [
                    "Use 3-63 lower-case letters, digits and single hyphens, starting and ending "
                    "with a letter or digit."
                ]
            }
        )
    if slug in tenancy_settings.RESERVED_SLUGS:
        raise ValidationError(fields={"slug": [f"'{slug}' is reserved."]})
    if Tenant.objects.filter(slug=slug).exists():
        raise ConflictError(f"A tenant with slug '{slug}' already exists.", details={"field": "slug"})
    return slug


def _validate_profile(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if "name" in values and not (isinstance(values["name"], str) and 1 <= len(values["name"].strip()) <= 200):
        errors["name"] = ["Give a name of 1-200 characters."]
    if "timezone" in values:
        try:
            ZoneInfo(str(values["timezone"]))
            if values["timezone"] not in available_timezones() and values["timezone"] != "UTC":
                raise ZoneInfoNotFoundError
        except (ZoneInfoNotFoundError, ValueError):
            errors["timezone"] = [f"Unknown time zone {values['timezone']!r} (use an IANA name like Europe/Paris)."]
    if "currency" in values and not re.fullmatch(r"[A-Z]{3}", str(values["currency"])):
        errors["currency"] = ["Use an ISO-4217 code such as USD."]
    if "region" in values and len(str(values["region"])) > 32:
        errors["region"] = ["At most 32 characters."]
    if errors:
        raise ValidationError(fields=errors)
    if "name" in values:
        values["name"] = values["name"].strip()
    return values


def _validate_tier(tier: str) -> str:
    if tier not in Tier.values:
        raise ValidationError(fields={"tier": [f"Unknown tier {tier!r}; use one of {', '.join(Tier.values)}."]})
    return tier


def is_platform_staff(user: Any) -> bool:
    return bool(getattr(user, "is_authenticated", False) and (user.is_superuser or user.is_staff))


def role_of(tenant: Tenant, user: Any) -> str | None:
    """The user's role in the tenant now (never cached), or None; a service account states its own (`tenant_roles`,
    see `selectors.get_role`)."""
    if not getattr(user, "is_authenticated", False):
        return None
    stated = getattr(user, "tenant_roles", None)
    if stated is not None:
        return stated.get(tenant.pk)
    return Membership.objects.filter(tenant=tenant, user=user).values_list("role", flat=True).first()


def require_role(tenant: Tenant, actor: Any, minimum: str) -> None:
    """Refuse unless `actor` holds at least `minimum` in the tenant (platform superusers always pass)."""
    if getattr(actor, "is_superuser", False):
        return
    role = role_of(tenant, actor)
    if role is None or ROLE_RANK[Role(role)] < ROLE_RANK[Role(minimum)]:
        raise AuthorizationError(f"This needs the {minimum} role in tenant '{tenant.slug}'.")


def _changed(tenant: Tenant) -> None:
    quotas.invalidate_limits(tenant)

    def after_commit() -> None:
        # Again after commit: another process may have cached the old limits while this transaction ran.
        quotas.invalidate_limits(tenant)
        tenant_changed.send(sender=Tenant, tenant=tenant)

    transaction.on_commit(after_commit)


# --- Tenants ------------------------------------------------------------------------------------------------


@transaction.atomic
def create_tenant(
    *,
    name: str,
    slug: str,
    owner: Any | None,
    tier: str | None = None,
    region: str = "",
    timezone_name: str = "UTC",
    currency: str = "USD",
    trial_days: int | None = None,
    actor: Any | None = None,
) -> Tenant:
    """Create a tenant in trial (or active when there are no trial days) with `owner` as its owner.

    `actor` (default: the owner) is who the audit log names, e.g. a platform admin creating it for someone."""
    validate_slug(slug)
    profile = _validate_profile({"name": name, "region": region, "timezone": timezone_name, "currency": currency})
    tier = _validate_tier(tier or tenancy_settings.DEFAULT_TIER)
    days = tenancy_settings.TRIAL_DAYS if trial_days is None else trial_days
    if days < 0:
        raise ValidationError(fields={"trial_days": ["Must be zero or more."]})
    tenant = Tenant.objects.create(
        slug=slug,
        tier=tier,
        status=TenantStatus.TRIAL if days else TenantStatus.ACTIVE,
        trial_ends_at=timezone.now() + timedelta(days=days) if days else None,
        **profile,
    )
    record_audit(action="tenant_created", tenant=tenant, actor=owner, obj=tenant, after=snapshot(tenant))
    if owner is not None:
        membership = Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
        record_audit(
            action="member_added",
            tenant=tenant,
            actor=owner,
            obj=membership,
            after={"user": owner.pk, "role": Role.OWNER},
        )
    return tenant


@transaction.atomic
def update_tenant(*, tenant: Tenant, actor: Any, **values: Any) -> Tenant:
    """Change the tenant's profile (name, region, timezone, currency)."""
    require_role(tenant, actor, Role.ADMIN)
    unknown = set(values) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError(fields={name: ["This field cannot be changed here."] for name in sorted(unknown)})
    values = _validate_profile(dict(values))
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before = snapshot(tenant, list(values))
    for field, value in values.items():
        setattr(tenant, field, value)
    tenant.save(update_fields=[*values, "updated_at"])
    record_audit(
        action="tenant_updated",
        tenant=tenant,
        actor=actor,
        obj=tenant,
        before=before,
        after=snapshot(tenant, list(values)),
    )
    _changed(tenant)
    return tenant


@transaction.atomic
def change_tier(*, tenant: Tenant, tier: str, actor: Any) -> Tenant:
    """Move the tenant to another tier; its limits follow (overrides stay)."""
    require_role(tenant, actor, Role.OWNER)
    _validate_tier(tier)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.status == TenantStatus.DEACTIVATED:
        raise ConflictError("A deactivated tenant cannot change tier.")
    before = {"tier": tenant.tier}
    tenant.tier = tier
    tenant.save(update_fields=["tier", "updated_at"])
    record_audit(
        action="tenant_tier_changed", tenant=tenant, actor=actor, obj=tenant, before=before, after={"tier": tier}
    )
    _changed(tenant)
    return tenant


def _transition(tenant: Tenant, target: str, actor: Any, action: str, reason: str = "") -> Tenant:
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    allowed = STATUS_TRANSITIONS[tenant.status]
    if target not in allowed:
        raise InvalidTransitionError(kind="tenant status", current=tenant.status, target=target, allowed=allowed)
    before = {"status": tenant.status, "suspension_reason": tenant.suspension_reason}
    tenant.status = target
    tenant.suspension_reason = reason if target == TenantStatus.SUSPENDED else ""
    tenant.save(update_fields=["status", "suspension_reason", "updated_at"])
    record_audit(
        action=action,
        tenant=tenant,
        actor=actor,
        obj=tenant,
        before=before,
        after={"status": target, "suspension_reason": tenant.suspension_reason},
    )
    _changed(tenant)
    return tenant


@transaction.atomic
def suspend_tenant(*, tenant: Tenant, actor: Any, reason: str) -> Tenant:
    """Platform staff stop a tenant from working (its keys and services stop answering)."""
    if not is_platform_staff(actor):
        raise AuthorizationError("Only platform staff can suspend a tenant.")
    if not reason or not reason.strip():
        raise ValidationError(fields={"reason": ["Say why the tenant is suspended."]})
    return _transition(tenant, TenantStatus.SUSPENDED, actor, "tenant_suspended", reason.strip()[:500])


@transaction.atomic
def reactivate_tenant(*, tenant: Tenant, actor: Any) -> Tenant:
    """Platform staff lift a suspension (or end a trial early)."""
    if not is_platform_staff(actor):
        raise AuthorizationError("Only platform staff can reactivate a tenant.")
    return _transition(tenant, TenantStatus.ACTIVE, actor, "tenant_reactivated")


@transaction.atomic
def deactivate_tenant(*, tenant: Tenant, actor: Any) -> Tenant:
    """Close the tenant for good (its owner or platform staff)."""
    if not is_platform_staff(actor):
        require_role(tenant, actor, Role.OWNER)
    return _transition(tenant, TenantStatus.DEACTIVATED, actor, "tenant_deactivated")


@transaction.atomic
def set_trusted_publisher(*, tenant: Tenant, trusted: bool, actor: Any) -> Tenant:
    """Platform staff let a publisher's services go live without manual approval (or withdraw that trust)."""
    if not is_platform_staff(actor) and actor is not None:
        raise AuthorizationError("Only platform staff can trust a publisher.")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.trusted_publisher == trusted:
        return tenant
    before = {"trusted_publisher": tenant.trusted_publisher}
    tenant.trusted_publisher = trusted
    tenant.save(update_fields=["trusted_publisher", "updated_at"])
    record_audit(
        action="tenant_trusted_publisher_changed",
        tenant=tenant,
        actor=actor,
        obj=tenant,
        before=before,
        after={"trusted_publisher": trusted},
    )
    _changed(tenant)
    return tenant


# --- Members ------------------------------------------------------------------------------------------------


def _validate_role(role: str) -> str:
    if role not in Role.values:
        raise ValidationError(fields={"role": [f"Unknown role {role!r}; use one of {', '.join(Role.values)}."]})
    return role


def _require_grantable(tenant: Tenant, actor: Any, role: str) -> None:
    """Admins manage members, admins and viewers; only owners make or unmake owners."""
    require_role(tenant, actor, Role.OWNER if role == Role.OWNER else Role.ADMIN)


@transaction.atomic
def add_member(*, tenant: Tenant, user: Any, role: str, actor: Any) -> Membership:
    """Add a user to the tenant; the members quota is enforced under a lock on the tenant."""
    _validate_role(role)
    _require_grantable(tenant, actor, role)
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if Membership.objects.filter(tenant=tenant, user=user).exists():
        raise ConflictError(f"{user} is already a member of '{tenant.slug}'.", details={"field": "user"})
    quotas.enforce_count(tenant, QuotaType.MEMBERS, current=Membership.objects.filter(tenant=tenant).count())
    membership = Membership.objects.create(tenant=tenant, user=user, role=role)
    record_audit(
        action="member_added", tenant=tenant, actor=actor, obj=membership, after={"user": user.pk, "role": role}
    )
    return membership


def _owner_count(tenant: Tenant) -> int:
    return Membership.objects.filter(tenant=tenant, role=Role.OWNER).count()


@transaction.atomic
def change_member_role(*, membership: Membership, role: str, actor: Any) -> Membership:
    """Change a member's role; the last owner cannot be demoted."""
    _validate_role(role)
    tenant = Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    _require_grantable(tenant, actor, Role.OWNER if Role.OWNER in (role, membership.role) else role)
    if membership.role == Role.OWNER and role != Role.OWNER and _owner_count(tenant) == 1:
        raise LastOwnerError()
    before = {"role": membership.role}
    membership.role = role
    membership.save(update_fields=["role"])
    record_audit(
        action="member_role_changed", tenant=tenant, actor=actor, obj=membership, before=before, after={"role": role}
    )
    return membership


@transaction.atomic
def remove_member(*, membership: Membership, actor: Any) -> None:
    """Remove a member (members may remove themselves); the last owner cannot leave."""
    tenant = Tenant.objects.select_for_update().get(pk=membership.tenant_id)
    membership = Membership.objects.select_for_update().get(pk=membership.pk)
    if getattr(actor, "pk", None) != membership.user_id:
        _require_grantable(tenant, actor, membership.role)
    if membership.role == Role.OWNER and _owner_count(tenant) == 1:
        raise LastOwnerError()
    before = {"user": membership.user_id, "role": membership.role}
    record_audit(action="member_removed", tenant=tenant, actor=actor, obj=membership, before=before)
    membership.delete()


def find_user(*, username: str | None = None, email: str | None = None) -> Any:
    """The user named by username or email, or a 404 naming what was looked for."""
    user_model = get_user_model()
    if username:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            raise NotFoundError("User", username)
        return user
    if email:
        users = list(user_model.objects.filter(email__iexact=email)[:2])
        if not users:
            raise NotFoundError("User", email)
        if len(users) > 1:
            raise ValidationError(fields={"email": ["Several users have this email; name the user by username."]})
        return users[0]
    raise ValidationError(fields={"username": ["Give a username or an email."]})


# --- Quota overrides ----------------------------------------------------------------------------------------


def _parse_limit(value: Any) -> Decimal:
    try:
        limit = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(fields={"limit": ["A number, or -1 for unlimited."]}) from None
    if not limit.is_finite() or (limit < 0 and limit != -1):
        raise ValidationError(fields={"limit": ["A number ≥ 0, or -1 for unlimited."]})
    return limit


@transaction.atomic
def set_quota_override(
    *, tenant: Tenant, quota_type: str, limit: Any, action: str | None = None, actor: Any
) -> QuotaOverride:
    """Platform staff replace a tier limit (and optionally its action) for one tenant."""
    if not is_platform_staff(actor):
        raise AuthorizationError("Only platform staff can override quotas.")
    if quota_type not in QuotaType.values:
        raise ValidationError(fields={"quota_type": [f"Unknown quota {quota_type!r}."]})
    if action and action not in QuotaAction.values:
        raise ValidationError(fields={"action": [f"Unknown action {action!r}."]})
    parsed = _parse_limit(limit)
    existing = QuotaOverride.objects.filter(tenant=tenant, quota_type=quota_type).first()
    before = snapshot(existing, ["limit", "action"]) if existing else None
    override, _ = QuotaOverride.objects.update_or_create(
        tenant=tenant, quota_type=quota_type, defaults={"limit": parsed, "action": action or ""}
    )
    record_audit(
        action="quota_override_set",
        tenant=tenant,
        actor=actor,
        obj=override,
        before=before,
        after={"quota_type": quota_type, "limit": parsed, "action": action or ""},
    )
    _changed(tenant)
    return override


@transaction.atomic
def clear_quota_override(*, tenant: Tenant, quota_type: str, actor: Any) -> None:
    """Return one quota of the tenant to its tier default."""
    if not is_platform_staff(actor):
        raise AuthorizationError("Only platform staff can override quotas.")
    override = QuotaOverride.objects.filter(tenant=tenant, quota_type=quota_type).first()
    if override is None:
        raise NotFoundError("Quota override", quota_type)
    record_audit(
        action="quota_override_cleared",
        tenant=tenant,
        actor=actor,
        obj=override,
        before=snapshot(override, ["quota_type", "limit", "action"]),
    )
    override.delete()
    _changed(tenant)
