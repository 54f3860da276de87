"""Reads of the consumption app: models a key may use, spend and quota of a key, a tenant's keys, SLA-relevant
versions."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum
from django.utils import timezone

from apps.consumption.keys import KeyInfo
from apps.consumption.models import ApiKey, ApiKeyStatus, UsageRollup
from apps.tenancy.money import to_units
from llm_infra_django.errors import NotFoundError, ValidationError


def key_spend(key_id: str, *, day: date | None = None, month: tuple[int, int] | None = None) -> Decimal:
    """What a key spent (USD, exactly as billed) on a UTC day or in a UTC month, from the rollups."""
    # django-stubs types a foreign key lookup by its target's pk as read (UUID), not as Django takes it (a str too).
    rows = UsageRollup.objects.filter(api_key_id=key_id)  # type: ignore[misc]
    if day is not None:
        rows = rows.filter(day=day)
    if month is not None:
        rows = rows.filter(day__year=month[0], day__month=month[1])
    return rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def tenant_billed(tenant_id: Any) -> Decimal:
    """What a tenant was billed, ever (USD, exactly as billed), from the rollups."""
    total = UsageRollup.objects.filter(tenant_id=tenant_id).aggregate(total=Sum("cost"))["total"]
    return Decimal(total or 0)


def tenant_billed_units(tenant_id: str) -> int:
    """`tenant_billed` in counter units (10⁻¹⁰ USD): the seed of a prepaid tenant's balance counter."""
    return to_units(tenant_billed(tenant_id))


def key_spend_units(key_id: str, *, day: date | None = None, month: tuple[int, int] | None = None) -> int:
    """`key_spend` in counter units (10⁻¹⁰ USD): the seed of a key's budget counter."""
    return to_units(key_spend(key_id, day=day, month=month))


def models_for_key(key: KeyInfo) -> list[dict[str, Any]]:
    """Active services the key's tenant may use (owned, granted or open), narrowed to the key's allowed models, with
    what a caller compares them by (category, context length, prices): three queries however many there are."""
    from apps.publishing.models import ServiceVersion, Status
    from apps.publishing.selectors import latest_active_filter
    from apps.tenancy.models import Tenant
    from apps.tenancy.sharing import usable_ids

    tenant = Tenant.objects.get(pk=key.tenant_id)
    versions = [
        version
        for version in ServiceVersion.objects.filter(status=Status.ACTIVE)
        .filter(~latest_active_filter())
        .select_related("service__publisher")
        .order_by("service__publisher__slug", "service__slug")
        if key.allows_model(version.model_id)
    ]
    usable = usable_ids(
        tenant, "service", {str(version.service_id): version.service.publisher_id for version in versions}
    )
    services = [
        {
            "model_id": version.model_id,
            "publisher": version.service.publisher.slug,
            "created": int((version.published_at or version.created_at).timestamp()),
            "category": version.category,
            "context_length": version.context_length,
            "pricing": _pricing(version),
        }
        for version in versions
        if str(version.service_id) in usable
    ]
    return _routed_models(key, tenant) + services


def _routed_models(key: KeyInfo, tenant: Any) -> list[dict[str, Any]]:
    """The catalog models the key may call whose offers its tenant may use: id `<owner>/<model-slug>`, how many
    offers serve it (`offers`), the widest context and the lowest price of each kind among them. Three queries."""
    from apps.catalog.models import ServedBy
    from apps.catalog.offers import ACTIVE_SERVICE_VERSION, CALLABLE_MODEL, CALLABLE_VERSION
    from apps.catalog.selectors import Viewer, visible_models
    from apps.tenancy.sharing import usable_ids

    links = list(
        ServedBy.objects.filter(
            model_version__status__in=CALLABLE_VERSION,
            model_version__model__in=visible_models(Viewer.of(tenant)).filter(status__in=CALLABLE_MODEL),
            service_version__status=ACTIVE_SERVICE_VERSION,
        ).select_related("model_version__model__owner", "service_version__service")
    )
    usable = usable_ids(
        tenant,
        "service",
        {str(link.service_version.service_id): link.service_version.service.publisher_id for link in links},
    )
    grouped: dict[str, tuple[Any, dict[str, Any]]] = {}
    for link in links:
        model = link.model_version.model
        model_id = f"{model.owner.slug}/{model.slug}"
        if str(link.service_version.service_id) in usable and key.allows_model(model_id):
            grouped.setdefault(model_id, (model, {}))[1][str(link.service_version_id)] = link.service_version
    rows = []
    for model_id, (model, offers) in sorted(grouped.items()):
        prices = [_pricing(version) for version in offers.values()]
        rows.append(
            {
                "model_id": model_id,
                "publisher": model.owner.slug,
                "created": int(model.created_at.timestamp()),
                "category": model.category,
                "context_length": max(version.context_length for version in offers.values()),
                "pricing": {
                    name: min((p[name] for p in prices), key=Decimal) for name in ("prompt", "completion", "request")
                },
                "offers": len(offers),
            }
        )
    return rows


def _usd(value: Decimal | None, per: int = 1) -> str:
    return format((Decimal(value or 0) / per).normalize(), "f")


def _pricing(version: Any) -> dict[str, str]:
    """What one call of the version costs, in the shape of OpenRouter's model list: USD per prompt token, per
    completion token and per request, as decimal strings, as the proxy bills them (free and subscription models:
    0); with a price for cached prompt tokens, also `input_cache_read`, as the publisher lists it."""
    per_token = version.pricing_model == "per_token"
    pricing = {
        "prompt": _usd(version.price_input_per_mtok if per_token else None, 1_000_000),
        "completion": _usd(version.price_output_per_mtok if per_token else None, 1_000_000),
        "request": _usd(version.price_per_request if version.pricing_model == "per_request" else None),
    }
    if per_token and version.price_cached_input_per_mtok is not None:
        pricing["input_cache_read"] = _usd(version.price_cached_input_per_mtok, 1_000_000)
    return pricing


def model_id_of_service(service_id: str) -> str:
    from apps.publishing.selectors import get_service

    try:
        return str(get_service(service_id))
    except (ValueError, Exception) as exc:
        if isinstance(exc, NotFoundError):
            raise
        raise NotFoundError("Service", service_id) from None


def list_api_keys(tenant: Any, *, status: str | None = None) -> QuerySet[ApiKey]:
    """A tenant's keys (metadata with creator and rotation links joined), newest first; with `status`, only those
    `active`, `expired` or `revoked` now (anything else is a 400 naming `status`)."""
    queryset = (
        ApiKey.objects.filter(tenant=tenant)
        .select_related("created_by", "rotated_to", "rotated_from")
        .order_by("-created_at", "-id")
    )
    if status is None:
        return queryset
    now = timezone.now()
    if status == ApiKeyStatus.REVOKED:
        return queryset.filter(revoked_at__isnull=False)
    if status == ApiKeyStatus.EXPIRED:
        return queryset.filter(revoked_at__isnull=True, expires_at__lte=now)
    if status == ApiKeyStatus.ACTIVE:
        return queryset.filter(revoked_at__isnull=True).exclude(expires_at__lte=now)
    raise ValidationError(fields={"status": [f"One of: {', '.join(ApiKeyStatus.CHOICES)}."]})


def list_sla_versions(tenant: Any, *, as_provider: bool = False, since: date | None = None) -> list[Any]:
    """Service versions whose SLA concerns a tenant: as a provider, its servable versions; as a consumer, the
    versions it used (daily rollups) since `since` (default: the last 30 days). Publisher joined, by model id."""
    from apps.publishing.lifecycle import SERVABLE
    from apps.publishing.models import ServiceVersion

    if as_provider:
        versions = ServiceVersion.objects.filter(service__publisher=tenant, status__in=SERVABLE)
    else:
        start = since or timezone.now().date() - timedelta(days=29)
        used = UsageRollup.objects.filter(tenant=tenant, day__gte=start).values("service_version_id")
        versions = ServiceVersion.objects.filter(pk__in=used)
    return list(
        versions.select_related("service__publisher").order_by(
            "service__publisher__slug", "service__slug", "created_at"
        )
    )


def _budget(limit: Decimal | None, spent: Decimal, period_start: date) -> dict[str, Any]:
    return {
        "limit": limit,
        "spent": spent,
        "remaining": None if limit is None else max(limit - spent, Decimal(0)),
        "period_start": period_start,
    }


def key_quota(key: KeyInfo) -> dict[str, Any]:
    """The calling key's limits and what it spent today and this month (UTC, from the rollups)."""
    today = timezone.now().date()
    month_start = today.replace(day=1)
    stored = ApiKey.objects.filter(pk=key.id).values_list("prefix", "last4").first()
    display = f"{stored[0]}…{stored[1]}" if stored else ""
    return {
        "id": key.id,
        "display": display,
        "rpm_limit": key.rpm_limit,
        "tpm_limit": key.tpm_limit,
        "max_parallel": key.max_parallel,
        "budget_day": _budget(key.budget_day_usd, key_spend(key.id, day=today), today),
        "budget_month": _budget(key.budget_month_usd, key_spend(key.id, month=(today.year, today.month)), month_start),
    }
