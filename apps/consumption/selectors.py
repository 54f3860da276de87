"""Reads of the consumption app: models a key may use, spend of a key, usage."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.db.models import Sum

from apps.consumption.admission import to_micro
from apps.consumption.keys import KeyInfo
from apps.consumption.models import UsageRollup
from llm_infra_django.errors import NotFoundError


def key_spend_micro(key_id: str, *, day: date | None = None, month: tuple[int, int] | None = None) -> int:
    """What a key spent (micro-USD) on a UTC day or in a UTC month, from the rollups."""
    rows = UsageRollup.objects.filter(api_key_id=key_id)
    if day is not None:
        rows = rows.filter(day=day)
    if month is not None:
        rows = rows.filter(day__year=month[0], day__month=month[1])
    total = rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)
    return to_micro(total)


def models_for_key(key: KeyInfo) -> list[dict[str, Any]]:
    """Active services the key's tenant may use (owned, granted or open), narrowed to the key's allowed models."""
    from apps.publishing.models import ServiceVersion, Status
    from apps.publishing.selectors import latest_active_filter
    from apps.tenancy.models import Tenant
    from apps.tenancy.sharing import can_use

    tenant = Tenant.objects.get(pk=key.tenant_id)
    versions = (
        ServiceVersion.objects.filter(status=Status.ACTIVE)
        .filter(~latest_active_filter())
        .select_related("service__publisher")
        .order_by("service__publisher__slug", "service__slug")
    )
    rows = []
    for version in versions:
        model_id = str(version.service)
        if not key.allows_model(model_id):
            continue
        if not can_use(tenant, "service", str(version.service_id), owner_id=version.service.publisher_id):
            continue
        created = version.published_at or version.created_at
        rows.append(
            {"model_id": model_id, "publisher": version.service.publisher.slug, "created": int(created.timestamp())}
        )
    return rows


def model_id_of_service(service_id: str) -> str:
    from apps.publishing.selectors import get_service

    try:
        return str(get_service(service_id))
    except (ValueError, Exception) as exc:
        if isinstance(exc, NotFoundError):
            raise
        raise NotFoundError("Service", service_id) from None
