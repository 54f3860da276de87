"""Offers of catalog models as their callers compare them: each provider's service version linked to a model version,
with its prices, limits, compliance and live health; offering and unlinking them; and a definition's `serves` applied
when its service version becomes active. Consumption sits above publishing and the catalog (peers that never import
each other), so this is where the two meet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import structlog

from apps.catalog import selectors as catalog_selectors
from apps.catalog.models import CatalogModel, ServedBy
from apps.catalog.offers import CALLABLE_VERSION
from apps.catalog.services import offers as catalog_offers
from apps.consumption.health import offer_health
from apps.publishing import selectors as publishing_selectors
from apps.publishing import services as publishing_services
from apps.publishing.models import Status
from apps.publishing.selectors import Route
from apps.tenancy.models import Tenant
from llm_infra_django.errors import AppError, NotFoundError, ValidationError

logger = structlog.get_logger(__name__)

# Service versions that can no longer serve anything: never offered.
CLOSED_SERVICE_VERSIONS = (Status.FAILED_VALIDATION, Status.REJECTED, Status.RETIRED)
# A definition's `serves` is applied when its version first becomes active (not when a deprecated or suspended one is
# reactivated: links removed in between stay removed).
FIRST_ACTIVATION = (Status.VALIDATING, Status.PENDING_APPROVAL)


@dataclass(frozen=True)
class Offer:
    """One offer of a catalog model: a provider's service version serving one of its versions."""

    link_id: str
    id: str  # `<publisher>/<service>`
    offer: str  # `<publisher>/<service>@<version>`
    model: str  # `<owner>/<model-slug>`
    model_version: str
    provider: str
    service_version_id: str
    status: str
    pricing_model: str
    price_input_per_mtok: Decimal | None
    price_output_per_mtok: Decimal | None
    price_cached_input_per_mtok: Decimal | None
    price_per_request: Decimal | None
    context_length: int
    data_residency: tuple[str, ...]
    compliance_level: str
    parameters: tuple[str, ...]
    health: dict[str, Any] | None = field(default=None)

    @classmethod
    def of(cls, link: ServedBy) -> Offer:
        version = link.service_version
        route = Route.of(version, str(version.service))
        model = link.model_version.model
        return cls(
            link_id=str(link.pk),
            id=str(version.service),
            offer=route.offer_id,
            model=f"{model.owner.slug}/{model.slug}",
            model_version=link.model_version.version,
            provider=route.publisher_slug,
            service_version_id=route.version_id,
            status=route.status,
            pricing_model=route.pricing_model,
            price_input_per_mtok=route.price_input_per_mtok,
            price_output_per_mtok=route.price_output_per_mtok,
            price_cached_input_per_mtok=route.price_cached_input_per_mtok,
            price_per_request=route.price_per_request,
            context_length=route.context_length,
            data_residency=route.data_residency,
            compliance_level=route.compliance_level,
            parameters=tuple(sorted(route.parameters)),
        )


def _shown(link: ServedBy, tenant: Tenant | None, everything: bool) -> bool:
    """Everyone sees the offers that can be called; the model's owner (and platform staff) every offer; a provider
    its own in any status."""
    if everything:
        return True
    if tenant is not None and tenant.pk in (
        link.model_version.model.owner_id,
        link.service_version.service.publisher_id,
    ):
        return True
    return link.service_version.status == Status.ACTIVE and link.model_version.status in CALLABLE_VERSION


def list_offers(
    models: Sequence[CatalogModel], *, tenant: Tenant | None = None, everything: bool = False
) -> dict[Any, list[Offer]]:
    """The offers of each model (by pk) that `tenant` may see (see `_shown`), greatest model version first; without
    health (`with_health` adds it to the ones shown). One query for all the models."""
    found: dict[Any, list[Offer]] = {model.pk: [] for model in models}
    for link in catalog_selectors.list_offer_links(models):
        if _shown(link, tenant, everything):
            found[link.model_version.model_id].append(Offer.of(link))
    return found


def with_health(offers: Sequence[Offer]) -> list[Offer]:
    """The offers with their live health (breaker state, recent availability, error rate, latency, throughput)."""
    health = offer_health(dict.fromkeys(offer.service_version_id for offer in offers))
    return [replace(offer, health=health[offer.service_version_id].as_dict()) for offer in offers]


def get_offer(link: ServedBy) -> Offer:
    """One offer, with its health."""
    link = catalog_selectors.get_offer_link(link.model_version.model, link.pk)
    return with_health([Offer.of(link)])[0]


def offer_service_version(
    *, model: CatalogModel, provider: Tenant, actor: Any, service_version_id: Any, version: str | None = None
) -> ServedBy:
    """Offer one of the provider's service versions for `model` (its version `version`, else its latest ready one):
    a 400 naming `service_version` or `model_version` for what cannot be offered."""
    try:
        service_version = publishing_selectors.get_publisher_version(provider, service_version_id)
    except NotFoundError:
        raise ValidationError(fields={"service_version": ["No version of your services has this id."]}) from None
    if service_version.status in CLOSED_SERVICE_VERSIONS:
        raise ValidationError(
            fields={"service_version": [f"{service_version} is {service_version.status}: it cannot serve a model."]}
        )
    ref = f"{model.owner.slug}/{model.slug}" + (f"@{version}" if version else "")
    model_version = catalog_offers.find_model_version(ref, "model_version")
    return catalog_offers.offer_model(
        provider=provider,
        actor=actor,
        model_version=model_version,
        service_version=service_version,
        field="model_version",
    )


def serves_issues(publisher: Tenant, refs: list[str]) -> dict[str, list[str]]:
    """Publishing's early check of a definition's `serves` (registered in `apps.py`)."""
    return catalog_offers.serves_issues(provider=publisher, refs=refs)


def link_served_models(sender: Any, version: Any, previous: str, **kwargs: Any) -> None:
    """When a service version first becomes active, link it to the catalog models its definition `serves`. A model
    it may no longer offer (closed to offers, unpublished, its version gone since the definition was checked) is
    left out: the version stays active, the refusal is logged and reported as a failed `serves` step of its
    validation run, naming `serves[<i>]`."""
    if version.status != Status.ACTIVE or previous not in FIRST_ACTIVATION or not version.serves:
        return
    refs = [str(ref) for ref in version.serves]
    provider = version.service.publisher
    refused = catalog_offers.serves_issues(provider=provider, refs=refs)
    accepted = [ref for index, ref in enumerate(refs) if f"serves[{index}]" not in refused]
    try:
        links = catalog_offers.set_served_models(service_version=version, refs=accepted)
    except AppError as exc:
        links, refused = [], {**refused, "serves": [exc.message]}
    linked = [
        f"{link.model_version.model.owner.slug}/{link.model_version.model.slug}@{link.model_version.version}"
        for link in links
    ]
    if refused:
        logger.warning("service_serves_refused", version=str(version.pk), refused=refused)
    publishing_services.report_serves(version=version, linked=linked, refused=refused)
