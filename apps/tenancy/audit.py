"""Append-only audit entries for every state change."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import models

from apps.tenancy.models import AuditLog, Tenant
from llm_infra_django.logging import get_request_id, log_audit


def snapshot(instance: models.Model, fields: list[str] | None = None) -> dict[str, Any]:
    """JSON-safe values of a model instance's concrete fields (foreign keys as their ids)."""
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if fields is not None and field.name not in fields:
            continue
        data[field.name] = _jsonable(getattr(instance, field.attname))
    return data


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def acting_user(actor: Any) -> Any | None:
    """The user row behind an actor, for "made by" fields: None for the system (no actor), an anonymous user and an
    API key's service account (which is no user; its label still names it)."""
    return actor if isinstance(actor, get_user_model()) else None


def record_audit(
    *,
    action: str,
    tenant: Tenant | None,
    actor: Any,
    obj: models.Model | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditLog:
    """Write one audit entry (inside the caller's transaction) and log it."""
    entry = AuditLog.objects.create(
        tenant=tenant,
        actor=acting_user(actor),
        actor_label=str(actor) if actor is not None else "system",
        action=action,
        object_type=object_type or (obj._meta.label_lower if obj is not None else ""),
        object_id=object_id or (str(obj.pk) if obj is not None else ""),
        before=_jsonable(before) if before is not None else None,
        after=_jsonable(after) if after is not None else None,
        request_id=get_request_id() or "",
    )
    log_audit(
        action=action,
        actor=entry.actor_label,
        resource=entry.object_type,
        resource_id=entry.object_id,
        tenant=tenant.slug if tenant else None,
    )
    return entry
