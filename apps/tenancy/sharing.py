"""Sharing between providers and consumers: policies, access requests, grants (capacity enforced atomically)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from apps.tenancy.audit import acting_user, record_audit, snapshot
from apps.tenancy.exceptions import CapacityError, InvalidTransitionError
from apps.tenancy.models import (
    TIER_ORDER,
    AccessRequest,
    AccessRequestStatus,
    Grant,
    GrantStatus,
    Role,
    SharingPolicy,
    Tenant,
    Tier,
    Visibility,
)
from apps.tenancy.services import require_role
from llm_infra_django.errors import (
    AuthorizationError,
    ConflictError,
    NotFoundError,
    PolicyViolationError,
    ValidationError,
)


@dataclass(frozen=True)
class ResourceType:
    """A kind of shareable resource, registered by the app that owns it."""

    name: str
    owner_of: Callable[[str], Tenant | None]
    # Whether a resource without a sharing policy is open to every operational tenant (like a public listing).
    open_by_default: bool = False


_resource_types: dict[str, ResourceType] = {}


def register_resource_type(
    name: str, owner_of: Callable[[str], Tenant | None], *, open_by_default: bool = False
) -> None:
    """Let an app (publishing: "service", catalog: "model") make its resources shareable."""
    _resource_types[name] = ResourceType(name, owner_of, open_by_default)


def _owner_of(resource_type: str, resource_id: str) -> Tenant:
    kind = _resource_types.get(resource_type)
    if kind is None:
        raise ValidationError(
            fields={
                "resource_type": [
                    f"Unknown resource type {resource_type!r}; use one of "
                    f"{', '.join(sorted(_resource_types)) or 'none registered'}."
                ]
            }
        )
    owner = kind.owner_of(str(resource_id))
    if owner is None:
        raise NotFoundError(resource_type.capitalize(), resource_id)
    return owner


def _active_grant(now: datetime) -> Q:
    return (Q(expires_at__isnull=True) | Q(expires_at__gt=now)) & Q(status=GrantStatus.ACTIVE)


def active_grants(policy: SharingPolicy, now: datetime | None = None) -> Any:
    return policy.grants.filter(_active_grant(now or timezone.now()))


# --- Policies -----------------------------------------------------------------------------------------------

POLICY_FIELDS = (
    "visibility",
    "tier_minimum",
    "regions",
    "max_cost_per_month",
    "requires_approval",
    "max_consumers",
    "expires_at",
    "provider_share_percent",
    "platform_fee_percent",
)


def _clean_policy_values(values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    if "visibility" in values and values["visibility"] not in Visibility.values:
        errors["visibility"] = [f"Use one of {', '.join(Visibility.values)}."]
    if values.get("tier_minimum") and values["tier_minimum"] not in Tier.values:
        errors["tier_minimum"] = [f"Use one of {', '.join(Tier.values)}."]
    if "regions" in values and not (
        isinstance(values["regions"], list) and all(isinstance(r, str) and r for r in values["regions"])
    ):
        errors["regions"] = ["A list of region names."]
    for field in ("max_cost_per_month", "provider_share_percent", "platform_fee_percent"):
        if values.get(field) is not None:
            try:
                values[field] = Decimal(str(values[field]))
                if values[field] < 0:
                    raise InvalidOperation
            except (InvalidOperation, ValueError):
                errors[field] = ["A non-negative number."]
    if values.get("max_consumers") is not None and (
        not isinstance(values["max_consumers"], int) or values["max_consumers"] < 1
    ):
        errors["max_consumers"] = ["A whole number ≥ 1, or empty for unlimited."]
    share, fee = values.get("provider_share_percent"), values.get("platform_fee_percent")
    if (
        "provider_share_percent" not in errors
        and "platform_fee_percent" not in errors
        and share is not None
        and fee is not None
        and share + fee != 100
    ):
        errors["platform_fee_percent"] = ["Provider share and platform fee must add up to 100."]
    if errors:
        raise ValidationError(fields=errors)
    return values


def _tenants_by_slug(slugs: Iterable[str], field: str) -> list[Tenant]:
    slugs = list(dict.fromkeys(slugs))
    found = list(Tenant.objects.filter(slug__in=slugs))
    missing = sorted(set(slugs) - {t.slug for t in found})
    if missing:
        raise ValidationError(fields={field: [f"Unknown tenants: {', '.join(missing)}."]})
    return found


@transaction.atomic
def create_policy(
    *,
    resource_type: str,
    resource_id: str,
    actor: Any,
    owner: Tenant | None = None,
    allowed_tenants: Iterable[str] = (),
    blocked_tenants: Iterable[str] = (),
    **values: Any,
) -> SharingPolicy:
    """Share a resource the actor's tenant owns (`owner`: the tenant acting; another tenant's resource is a 404,
    so its existence is not revealed)."""
    resource_owner = _owner_of(resource_type, resource_id)
    if owner is not None and resource_owner.pk != owner.pk:
        raise NotFoundError(resource_type.capitalize(), resource_id)
    owner = resource_owner
    require_role(owner, actor, Role.ADMIN)
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(fields={name: ["Unknown field."] for name in sorted(unknown)})
    values = _clean_policy_values(
        {"provider_share_percent": Decimal(80), "platform_fee_percent": Decimal(20), **values}
    )
    allowed = _tenants_by_slug(allowed_tenants, "allowed_tenants")
    blocked = _tenants_by_slug(blocked_tenants, "blocked_tenants")
    try:
        with transaction.atomic():
            policy = SharingPolicy.objects.create(
                owner=owner, resource_type=resource_type, resource_id=str(resource_id), **values
            )
    except IntegrityError:
        raise ConflictError("This resource already has a sharing policy; update it instead.") from None
    policy.allowed_tenants.set(allowed)
    policy.blocked_tenants.set(blocked)
    record_audit(action="sharing_policy_created", tenant=owner, actor=actor, obj=policy, after=snapshot(policy))
    return policy


@transaction.atomic
def update_policy(
    *,
    policy: SharingPolicy,
    actor: Any,
    allowed_tenants: Iterable[str] | None = None,
    blocked_tenants: Iterable[str] | None = None,
    **values: Any,
) -> SharingPolicy:
    """Change a policy's visibility, lists, conditions or capacity (existing grants stay)."""
    require_role(policy.owner, actor, Role.ADMIN)
    unknown = set(values) - set(POLICY_FIELDS)
    if unknown:
        raise ValidationError(fields={name: ["Unknown field."] for name in sorted(unknown)})
    policy = SharingPolicy.objects.select_for_update().get(pk=policy.pk)
    merged = _clean_policy_values(
        {
            "provider_share_percent": policy.provider_share_percent,
            "platform_fee_percent": policy.platform_fee_percent,
            **values,
        }
    )
    before = snapshot(policy)
    for field in values:
        setattr(policy, field, merged[field])
    policy.save()
    if allowed_tenants is not None:
        policy.allowed_tenants.set(_tenants_by_slug(allowed_tenants, "allowed_tenants"))
    if blocked_tenants is not None:
        policy.blocked_tenants.set(_tenants_by_slug(blocked_tenants, "blocked_tenants"))
    record_audit(
        action="sharing_policy_updated",
        tenant=policy.owner,
        actor=actor,
        obj=policy,
        before=before,
        after=snapshot(policy),
    )
    return policy


# --- Conditions ---------------------------------------------------------------------------------------------


def violations(
    policy: SharingPolicy,
    consumer: Tenant,
    now: datetime | None = None,
    *,
    blocked: bool | None = None,
    listed: bool | None = None,
) -> list[dict[str, str]]:
    """Why `consumer` may not use the policy's resource (empty when it may ask for, or hold, access). Whether the
    policy blocks (`blocked`) or lists (`listed`) the consumer is read from the database unless given."""
    now = now or timezone.now()
    found: list[dict[str, str]] = []
    if policy.expires_at and policy.expires_at <= now:
        found.append({"rule": "expired", "message": "The sharing policy has expired."})
    if blocked is None:
        blocked = policy.blocked_tenants.filter(pk=consumer.pk).exists()
    if blocked:
        found.append({"rule": "blocked", "message": "This tenant is blocked by the provider."})
    if policy.visibility == Visibility.PRIVATE:
        found.append({"rule": "visibility", "message": "The resource is private."})
    if policy.visibility == Visibility.TENANT:
        if listed is None:
            listed = policy.allowed_tenants.filter(pk=consumer.pk).exists()
        if not listed:
            found.append({"rule": "visibility", "message": "The resource is shared with listed tenants only."})
    if policy.tier_minimum and TIER_ORDER.index(Tier(consumer.tier)) < TIER_ORDER.index(Tier(policy.tier_minimum)):
        found.append({"rule": "tier_minimum", "message": f"Needs the {policy.tier_minimum} tier or above."})
    if policy.regions and consumer.region not in policy.regions:
        found.append({"rule": "region", "message": f"Available to regions {', '.join(policy.regions)} only."})
    if not consumer.is_operational:
        found.append({"rule": "tenant_status", "message": f"The tenant is {consumer.status}."})
    return found


# --- Requests and grants ------------------------------------------------------------------------------------


def _grant(policy: SharingPolicy, consumer: Tenant, request: AccessRequest | None, actor: Any) -> Grant:
    """Create a grant under the lock on the policy row: `max_consumers` is never exceeded."""
    locked = SharingPolicy.objects.select_for_update().get(pk=policy.pk)
    if active_grants(locked).filter(consumer=consumer).exists():
        raise ConflictError(f"'{consumer.slug}' already has access.")
    if locked.max_consumers is not None and active_grants(locked).count() >= locked.max_consumers:
        raise CapacityError(details={"max_consumers": locked.max_consumers})
    grant = Grant.objects.create(policy=locked, consumer=consumer, request=request, expires_at=locked.expires_at)
    record_audit(
        action="sharing_grant_created",
        tenant=locked.owner,
        actor=actor,
        obj=grant,
        after={"consumer": consumer.slug, "policy": str(locked.pk)},
    )
    return grant


@transaction.atomic
def request_access(*, policy: SharingPolicy, consumer: Tenant, actor: Any, message: str = "") -> AccessRequest:
    """Ask for access; approved at once (with its grant) when the policy does not require approval."""
    require_role(consumer, actor, Role.ADMIN)
    if consumer.pk == policy.owner_id:
        raise ValidationError(fields={"consumer": ["The owner already has access to its own resources."]})
    found = violations(policy, consumer)
    if any(v["rule"] in ("visibility", "blocked") for v in found):
        raise NotFoundError("Sharing policy", policy.pk)  # what the consumer may not see does not exist for it
    if found:
        raise PolicyViolationError("The sharing policy does not allow this tenant.", violations=found)
    if active_grants(policy).filter(consumer=consumer).exists():
        raise ConflictError(f"'{consumer.slug}' already has access.")
    try:
        with transaction.atomic():
            access = AccessRequest.objects.create(
                policy=policy,
                consumer=consumer,
                requested_by=acting_user(actor),
                message=(message or "")[:1000],
            )
    except IntegrityError:
        raise ConflictError("A request from this tenant is already pending.") from None
    record_audit(
        action="sharing_request_created",
        tenant=consumer,
        actor=actor,
        obj=access,
        after={"policy": str(policy.pk), "consumer": consumer.slug},
    )
    if not policy.requires_approval:
        _decide(access, AccessRequestStatus.APPROVED, actor, "auto-approved")
        _grant(policy, consumer, access, actor)
    return access


def _decide(access: AccessRequest, status: str, actor: Any, note: str) -> None:
    access.status = status
    access.decided_by = acting_user(actor)
    access.decided_at = timezone.now()
    access.decision_note = (note or "")[:1000]
    access.save(update_fields=["status", "decided_by", "decided_at", "decision_note"])


def _pending(access: AccessRequest, target: str) -> AccessRequest:
    locked = AccessRequest.objects.select_for_update().select_related("policy", "consumer").get(pk=access.pk)
    if locked.status != AccessRequestStatus.PENDING:
        raise InvalidTransitionError(kind="access request", current=locked.status, target=target, allowed=[])
    return locked


@transaction.atomic
def approve_request(*, access: AccessRequest, actor: Any, note: str = "") -> Grant:
    """The provider approves: a grant is created unless the policy is at capacity (then 409, nothing changes)."""
    require_role(access.policy.owner, actor, Role.ADMIN)
    access = _pending(access, AccessRequestStatus.APPROVED)
    found = violations(access.policy, access.consumer)
    if found:
        raise PolicyViolationError("The sharing policy no longer allows this tenant.", violations=found)
    grant = _grant(access.policy, access.consumer, access, actor)
    _decide(access, AccessRequestStatus.APPROVED, actor, note)
    record_audit(
        action="sharing_request_approved",
        tenant=access.policy.owner,
        actor=actor,
        obj=access,
        after={"status": AccessRequestStatus.APPROVED},
    )
    return grant


@transaction.atomic
def reject_request(*, access: AccessRequest, actor: Any, note: str = "") -> AccessRequest:
    """The provider rejects a pending request."""
    require_role(access.policy.owner, actor, Role.ADMIN)
    access = _pending(access, AccessRequestStatus.REJECTED)
    _decide(access, AccessRequestStatus.REJECTED, actor, note)
    record_audit(
        action="sharing_request_rejected",
        tenant=access.policy.owner,
        actor=actor,
        obj=access,
        after={"status": AccessRequestStatus.REJECTED, "note": note},
    )
    return access


@transaction.atomic
def revoke_grant(*, grant: Grant, actor: Any) -> Grant:
    """The provider (or the consumer, giving access up) ends a grant."""
    grant = Grant.objects.select_for_update().select_related("policy__owner", "consumer").get(pk=grant.pk)
    try:
        require_role(grant.policy.owner, actor, Role.ADMIN)
    except AuthorizationError:
        require_role(grant.consumer, actor, Role.ADMIN)
    if grant.status != GrantStatus.ACTIVE:
        raise InvalidTransitionError(kind="grant", current=grant.status, target=GrantStatus.REVOKED, allowed=[])
    grant.status = GrantStatus.REVOKED
    grant.revoked_at = timezone.now()
    grant.save(update_fields=["status", "revoked_at"])
    record_audit(
        action="sharing_grant_revoked",
        tenant=grant.policy.owner,
        actor=actor,
        obj=grant,
        before={"status": GrantStatus.ACTIVE},
        after={"status": GrantStatus.REVOKED},
    )
    return grant


def expire_grants(now: datetime | None = None) -> int:
    """Mark grants past their expiry as expired (run periodically); returns how many."""
    now = now or timezone.now()
    expired = 0
    for grant_id in Grant.objects.filter(status=GrantStatus.ACTIVE, expires_at__lte=now).values_list("pk", flat=True):
        with transaction.atomic():
            grant = Grant.objects.select_for_update().select_related("policy__owner").get(pk=grant_id)
            if grant.status != GrantStatus.ACTIVE:
                continue
            grant.status = GrantStatus.EXPIRED
            grant.save(update_fields=["status"])
            record_audit(
                action="sharing_grant_expired",
                tenant=grant.policy.owner,
                actor=None,
                obj=grant,
                before={"status": GrantStatus.ACTIVE},
                after={"status": GrantStatus.EXPIRED},
            )
            expired += 1
    return expired


def can_use(consumer: Tenant, resource_type: str, resource_id: str, owner_id: Any = None) -> bool:
    """Whether the consumer may use the resource: it owns it, holds an active grant, or the policy is public and
    needs no approval (and no condition excludes the consumer)."""
    return str(resource_id) in usable_ids(consumer, resource_type, {str(resource_id): owner_id})


def usable_ids(consumer: Tenant, resource_type: str, owners: Mapping[str, Any]) -> set[str]:
    """The resources among `owners` (resource id → owner tenant id, or None) that the consumer may use, each as
    `can_use` decides, in one query however many they are."""
    usable = {resource_id for resource_id, owner_id in owners.items() if str(owner_id) == str(consumer.pk)}
    others = [resource_id for resource_id in owners if resource_id not in usable]
    if not others:
        return usable
    now = timezone.now()
    blocked = SharingPolicy.blocked_tenants.through.objects.filter(sharingpolicy=OuterRef("pk"), tenant=consumer.pk)
    listed = SharingPolicy.allowed_tenants.through.objects.filter(sharingpolicy=OuterRef("pk"), tenant=consumer.pk)
    granted = Grant.objects.filter(_active_grant(now), policy=OuterRef("pk"), consumer=consumer)
    policies = {
        policy.resource_id: policy
        for policy in SharingPolicy.objects.filter(resource_type=resource_type, resource_id__in=others).annotate(
            consumer_blocked=Exists(blocked), consumer_listed=Exists(listed), consumer_granted=Exists(granted)
        )
    }
    kind = _resource_types.get(resource_type)
    open_by_default = bool(kind and kind.open_by_default and consumer.is_operational)
    for resource_id in others:
        policy = policies.get(resource_id)
        if policy is None:
            allowed = open_by_default
        elif policy.owner_id == consumer.pk:
            allowed = True
        else:
            found = violations(policy, consumer, now, blocked=policy.consumer_blocked, listed=policy.consumer_listed)
            allowed = not found and (
                policy.consumer_granted
                or (policy.visibility in (Visibility.PUBLIC, Visibility.MARKETPLACE) and not policy.requires_approval)
            )
        if allowed:
            usable.add(resource_id)
    return usable
