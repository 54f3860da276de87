"""The version lifecycle, enforced in one place (SPEC §4.2)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.publishing.conf import publishing_settings
from apps.publishing.exceptions import InvalidTransitionError
from apps.publishing.models import ServiceVersion, Status
from apps.publishing.signals import version_status_changed

TRANSITIONS: dict[str, list[str]] = {
    Status.DRAFT: [Status.VALIDATING],
    Status.VALIDATING: [Status.FAILED_VALIDATION, Status.PENDING_APPROVAL, Status.ACTIVE],
    Status.FAILED_VALIDATION: [],
    Status.PENDING_APPROVAL: [Status.ACTIVE, Status.REJECTED],
    Status.REJECTED: [],
    Status.ACTIVE: [Status.DEPRECATED, Status.SUSPENDED, Status.RETIRED],
    Status.DEPRECATED: [Status.ACTIVE, Status.RETIRED],
    Status.SUSPENDED: [Status.ACTIVE, Status.RETIRED],
    Status.RETIRED: [],
}
# Statuses in which a consumer can call a version (a pinned deprecated version keeps working in its grace period).
SERVABLE = (Status.ACTIVE, Status.DEPRECATED)


def allowed_transitions(status: str) -> list[str]:
    return list(TRANSITIONS[status])


def transition(version: ServiceVersion, target: str, *, actor: Any, reason: str = "") -> ServiceVersion:
    """Move `version` to `target` under a row lock, or raise 409 listing the allowed targets.

    Callers decide *who* may ask (see services); this function decides *what* is possible, records the audit
    entry and invalidates cached routes after commit.
    """
    from apps.tenancy.audit import record_audit

    with transaction.atomic():
        locked = ServiceVersion.objects.select_for_update().select_related("service__publisher").get(pk=version.pk)
        current = locked.status
        if target not in TRANSITIONS[current]:
            raise InvalidTransitionError(current=current, target=target, allowed=allowed_transitions(current))
        now = timezone.now()
        locked.status = target
        fields = ["status", "updated_at"]
        if target == Status.ACTIVE:
            if locked.published_at is None:
                locked.published_at = now
            locked.deprecated_at = locked.retire_at = None
            locked.suspension_reason = ""
            fields += ["published_at", "deprecated_at", "retire_at", "suspension_reason"]
        elif target == Status.DEPRECATED:
            locked.deprecated_at = now
            locked.retire_at = now + timedelta(days=publishing_settings.DEPRECATION_GRACE_DAYS)
            fields += ["deprecated_at", "retire_at"]
        elif target == Status.SUSPENDED:
            locked.suspension_reason = reason[:500]
            fields.append("suspension_reason")
        elif target in (Status.REJECTED, Status.FAILED_VALIDATION) and reason:
            locked.review_notes = reason[:1000]
            fields.append("review_notes")
        locked.save(update_fields=fields)
        record_audit(
            action=f"service_version_{target}",
            tenant=locked.service.publisher,
            actor=actor,
            obj=locked,
            before={"status": current},
            after={"status": target, **({"reason": reason} if reason else {})},
        )
        transaction.on_commit(
            lambda: version_status_changed.send(sender=ServiceVersion, version=locked, previous=current)
        )
    version.status = locked.status
    return locked
