"""State changes of the consumption app: API keys (create, rotate, revoke, and revoke those of a person who leaves)
and a tenant's routing preferences."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.consumption import flags, preferences
from apps.consumption.conf import consumption_settings
from apps.consumption.keys import generate_secret, hash_secret, key_cache
from apps.consumption.models import ApiKey, Scope, TenantRouting
from apps.tenancy.audit import acting_user, record_audit, snapshot
from apps.tenancy.models import QuotaType, Role, Tenant
from apps.tenancy.quotas import enforce_count
from apps.tenancy.services import require_role
from llm_infra_django.errors import ConflictError, ValidationError

LIMIT_FIELDS = ("rpm_limit", "tpm_limit", "max_parallel", "budget_day_usd", "budget_month_usd")


def _clean(
    *,
    name: str,
    scopes: Any,
    allowed_models: Any,
    limits: dict[str, Any],
    expires_at: datetime | None,
    routing: Any = None,
) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    try:
        cleaned_routing = preferences.clean(routing, "routing")
    except ValidationError as exc:
        errors.update(exc.details.get("fields") or {"routing": [exc.message]})
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 100:
        errors["name"] = ["Give a name of 1-100 characters."]
    if not isinstance(scopes, (list, tuple)) or not scopes or any(s not in Scope.values for s in scopes):
        errors["scopes"] = [f"A non-empty list of: {', '.join(Scope.values)}."]
    if not isinstance(allowed_models, (list, tuple)) or not all(
        isinstance(m, str) and m.count("/") == 1 for m in allowed_models
    ):
        errors["allowed_models"] = ["A list of model ids like 'publisher/service'."]
    cleaned: dict[str, Any] = {}
    for field in LIMIT_FIELDS:
        value = limits.get(field)
        if value is None:
            cleaned[field] = None
            continue
        try:
            number = Decimal(str(value)) if field.startswith("budget") else int(value)
        except (InvalidOperation, ValueError, TypeError):
            errors[field] = ["A positive number."]
            continue
        if isinstance(number, bool) or number <= 0:
            errors[field] = ["A positive number, or nothing for no limit."]
            continue
        cleaned[field] = number
    if expires_at is not None and expires_at <= timezone.now():
        errors["expires_at"] = ["The expiry must be in the future."]
    if errors:
        raise ValidationError(fields=errors)
    return {
        "name": name.strip(),
        "scopes": sorted(set(scopes)),
        "allowed_models": list(allowed_models),
        "expires_at": expires_at,
        "routing": cleaned_routing,
        **cleaned,
    }


@transaction.atomic
def create_api_key(
    *,
    tenant: Tenant,
    actor: Any,
    name: str,
    scopes: list[str] | tuple[str, ...] = (Scope.CONSUME,),
    allowed_models: list[str] | tuple[str, ...] = (),
    expires_at: datetime | None = None,
    routing: Any = None,
    **limits: Any,
) -> tuple[ApiKey, str]:
    """Create a key; returns it with its secret, which is never stored and never shown again."""
    if actor is not None:
        require_role(tenant, actor, Role.ADMIN)
    unknown = set(limits) - set(LIMIT_FIELDS)
    if unknown:
        raise ValidationError(fields={name_: ["Unknown field."] for name_ in sorted(unknown)})
    values = _clean(
        name=name,
        scopes=list(scopes),
        allowed_models=list(allowed_models),
        limits=limits,
        expires_at=expires_at,
        routing=routing,
    )
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if not locked.is_operational:
        raise ConflictError(f"Tenant '{locked.slug}' is {locked.status}: it cannot create keys.")
    live = ApiKey.objects.filter(tenant=locked, revoked_at__isnull=True).count()
    enforce_count(locked, QuotaType.API_KEYS, current=live)
    secret = generate_secret()
    key = ApiKey.objects.create(
        tenant=locked,
        created_by=acting_user(actor),
        key_hash=hash_secret(secret),
        prefix=secret[:7],
        last4=secret[-4:],
        **values,
    )
    record_audit(action="api_key_created", tenant=locked, actor=actor, obj=key, after=_public(key))
    return key, secret


def _public(key: ApiKey) -> dict[str, Any]:
    """The audit view of a key (never the hash)."""
    data = snapshot(
        key,
        ["name", "prefix", "last4", "scopes", "allowed_models", "routing", *LIMIT_FIELDS, "expires_at", "revoked_at"],
    )
    return data


@transaction.atomic
def revoke_api_key(*, key: ApiKey, actor: Any) -> ApiKey:
    """Revoke at once: Redis refuses the key on every worker's next request; the database records it."""
    if actor is not None:
        require_role(key.tenant, actor, Role.ADMIN)
    locked = ApiKey.objects.select_for_update().select_related("tenant").get(pk=key.pk)
    if locked.revoked_at is not None:
        raise ConflictError("This API key is already revoked.")
    return _revoke(locked, actor)


def _revoke(locked: ApiKey, actor: Any, reason: str | None = None) -> ApiKey:
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    after: dict[str, Any] = {"revoked_at": locked.revoked_at}
    if reason:
        after["reason"] = reason
    record_audit(action="api_key_revoked", tenant=locked.tenant, actor=actor, obj=locked, after=after)
    _stop_everywhere(locked)
    return locked


def _stop_everywhere(key: ApiKey) -> None:
    """Make every worker refuse the key from its next request: the revocation flag the admission script and the
    management API check (in Redis, set inside the transaction), and this process's cached copy (after commit)."""
    flags.mark_revoked(str(key.tenant_id), str(key.pk))
    transaction.on_commit(lambda: key_cache.forget(str(key.pk)))


@transaction.atomic
def rotate_api_key(*, key: ApiKey, actor: Any, grace_hours: float | None = None) -> tuple[ApiKey, str]:
    """Issue a new secret with the same settings (and the same person behind it); the old key keeps working for the
    grace period, then expires. Without grace it stops at once on every worker, as a revoked key does; a grace
    shorter than the workers' key cache (`KEY_CACHE_SECONDS`) is lengthened to it, so that every worker has read the
    new expiry by the time it passes."""
    if actor is not None:
        require_role(key.tenant, actor, Role.ADMIN)
    old = ApiKey.objects.select_for_update().select_related("tenant").get(pk=key.pk)
    if old.revoked_at is not None:
        raise ConflictError("A revoked key cannot be rotated.")
    if hasattr(old, "rotated_to"):
        raise ConflictError("This key was already rotated; rotate its successor.")
    hours = consumption_settings.ROTATION_GRACE_HOURS if grace_hours is None else grace_hours
    grace = timedelta(hours=hours)
    if grace:
        grace = max(grace, timedelta(seconds=consumption_settings.KEY_CACHE_SECONDS + 1))
    now = timezone.now()
    secret = generate_secret()
    new = ApiKey.objects.create(
        tenant=old.tenant,
        created_by_id=old.created_by_id,
        key_hash=hash_secret(secret),
        prefix=secret[:7],
        last4=secret[-4:],
        name=old.name,
        scopes=old.scopes,
        allowed_models=old.allowed_models,
        routing=old.routing,
        expires_at=old.expires_at,
        rotated_from=old,
        **{f: getattr(old, f) for f in LIMIT_FIELDS},
    )
    old.expires_at = min(now + grace, old.expires_at) if old.expires_at else now + grace
    old.save(update_fields=["expires_at"])
    record_audit(
        action="api_key_rotated",
        tenant=old.tenant,
        actor=actor,
        obj=old,
        after={"successor": str(new.pk), "old_key_expires_at": old.expires_at},
    )
    if old.expires_at <= now:
        _stop_everywhere(old)
    else:
        transaction.on_commit(lambda: key_cache.forget(str(old.pk)))
    return new, secret


@transaction.atomic
def revoke_keys_of(*, user_id: Any, tenant_id: Any = None, reason: str) -> None:
    """The person `user_id` left the tenant (`tenant_id`; None: every tenant, when deactivated or deleted): revoke
    the keys they created there, at once on every worker. With `KEYS_OUTLIVE_MEMBERS`, keys holding `consume` stay,
    reduced to it (their calls go on; the management rights they had through their person end). Called by signal
    receivers (`apps.consumption.apps`), so that every path is covered: services, the admin, the shell."""
    keys = (
        ApiKey.objects.select_for_update()
        .select_related("tenant")
        .filter(created_by_id=user_id, revoked_at__isnull=True)
    )
    if tenant_id is not None:
        keys = keys.filter(tenant_id=tenant_id)
    for key in keys:
        if consumption_settings.KEYS_OUTLIVE_MEMBERS and Scope.CONSUME in key.scopes:
            if key.scopes == [Scope.CONSUME]:
                continue
            before = {"scopes": key.scopes}
            key.scopes = [Scope.CONSUME]
            key.save(update_fields=["scopes"])
            record_audit(
                action="api_key_reduced",
                tenant=key.tenant,
                actor=None,
                obj=key,
                before=before,
                after={"scopes": key.scopes, "reason": reason},
            )
            transaction.on_commit(functools.partial(key_cache.forget, str(key.pk)))
        else:
            _revoke(key, None, reason=reason)


@transaction.atomic
def set_tenant_routing(*, tenant: Tenant, actor: Any, routing: Any) -> TenantRouting:
    """Replace the tenant's routing preferences (an admin's decision); every worker applies them within
    `KEY_CACHE_SECONDS` (they travel with the keys' cached settings)."""
    if actor is not None:
        require_role(tenant, actor, Role.ADMIN)
    cleaned = preferences.clean(routing, "routing")
    settings, _ = TenantRouting.objects.select_for_update().get_or_create(tenant=tenant)
    before = dict(settings.routing)
    settings.routing = cleaned
    settings.save(update_fields=["routing", "updated_at"])
    record_audit(
        action="tenant_routing_changed", tenant=tenant, actor=actor, obj=settings, before=before, after=cleaned
    )
    transaction.on_commit(lambda: key_cache.forget_tenant(str(tenant.pk)))
    return settings
