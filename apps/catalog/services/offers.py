"""Offers: a provider's service version declared as serving a catalog model version (a `ServedBy` link). The model's
owner links its own service versions (`served_by`) and decides per model whether other tenants may offer it
(`open_offers`); a provider links one of its active service versions to a model it may use; either side can unlink
an offer."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.catalog.models import CatalogModel, ModelVersion, ServedBy, VersionStatus
from apps.catalog.offers import split_model_id, visible_to
from apps.catalog.services.common import audit, require_admin, require_operational
from apps.tenancy.models import Tenant
from llm_infra_django.errors import AuthorizationError, ConflictError, NotFoundError, ValidationError

OFFERABLE_VERSION = (VersionStatus.READY, VersionStatus.DEPRECATED)


def find_model_version(model_ref: str, path: str = "serves") -> ModelVersion:
    """The model version `<owner>/<model-slug>[@<version>]` names (without a version: its latest ready one)."""
    parts = split_model_id(model_ref)
    if parts is None:
        raise ValidationError(fields={path: ["A catalog model: '<owner>/<model-slug>' or '…@<version>'."]})
    owner, slug, version = parts
    versions = ModelVersion.objects.select_related("model__owner").filter(model__owner__slug=owner, model__slug=slug)
    if version is not None:
        found = versions.filter(version=version).first()
    else:
        found = versions.filter(status=VersionStatus.READY).order_by("-major", "-minor", "-patch").first()
    if found is None:
        raise ValidationError(fields={path: [f"No ready version of a catalog model '{model_ref}'."]})
    return found


def may_offer(provider: Tenant, model: CatalogModel) -> bool:
    """The owner always; another tenant when the model accepts open offers and the tenant sees it listed (published
    or deprecated, and visible to it by the catalog's rules: public, marketplace, its sharing policy or a grant)."""
    if str(provider.pk) == str(model.owner_id):
        return True
    return model.open_offers and visible_to(provider, str(model.pk))


def check_offer(provider: Tenant, version: ModelVersion, path: str = "serves") -> None:
    """Refuse (400 naming `path`) an offer the provider may not make."""
    if version.status not in OFFERABLE_VERSION:
        raise ValidationError(fields={path: [f"{version} is {version.status}: only ready versions can be offered."]})
    if not may_offer(provider, version.model):
        raise ValidationError(fields={path: [f"The model {version.model.handle} does not accept offers from you."]})


@transaction.atomic
def offer_model(
    *, provider: Tenant, actor: Any, model_version: ModelVersion, service_version: Any, field: str = "serves"
) -> ServedBy:
    """Declare that the provider's `service_version` serves `model_version` (idempotent); a refusal names `field`."""
    if actor is not None:
        require_admin(provider, actor)
    require_operational(provider)
    if str(service_version.service.publisher_id) != str(provider.pk):
        raise AuthorizationError("Only the service's publisher can offer it.")
    check_offer(provider, model_version, field)
    link, created = ServedBy.objects.get_or_create(model_version=model_version, service_version=service_version)
    if created:
        audit("catalog_offer_created", provider, actor, link, after={"service_version": str(service_version.pk)})
    return link


@transaction.atomic
def unlink_offer(*, link: ServedBy, actor: Any) -> None:
    """Remove an offer: by an admin of the model's owner or of the offering provider."""
    link = ServedBy.objects.select_related("model_version__model__owner", "service_version__service").get(pk=link.pk)
    owner = link.model_version.model.owner
    provider = Tenant.objects.get(pk=link.service_version.service.publisher_id)
    for tenant in (owner, provider):
        try:
            require_admin(tenant, actor)
        except (AuthorizationError, NotFoundError):
            continue
        audit("catalog_offer_removed", tenant, actor, link, before={"service_version": str(link.service_version_id)})
        link.delete()
        return
    raise AuthorizationError("Only the model's owner or the offer's provider can remove it.")


def serves_issues(*, provider: Tenant, refs: list[str]) -> dict[str, list[str]]:
    """What is wrong with each reference of a service definition's `serves` (`{"serves[<i>]": [messages]}`): a
    model that does not exist (or has no such ready version), or that does not accept offers from `provider`."""
    issues: dict[str, list[str]] = {}
    for index, ref in enumerate(refs):
        path = f"serves[{index}]"
        try:
            check_offer(provider, find_model_version(ref, path), path)
        except ValidationError as exc:
            for name, messages in exc.details.get("fields", {}).items():
                issues.setdefault(name, []).extend(messages)
    return issues


def set_served_models(*, service_version: Any, refs: list[str], actor: Any = None) -> list[ServedBy]:
    """Make the links of `service_version` exactly the models `refs` names (a service definition's `serves`)."""
    provider = Tenant.objects.get(pk=service_version.service.publisher_id)
    versions = [find_model_version(ref, f"serves[{index}]") for index, ref in enumerate(refs)]
    for index, version in enumerate(versions):
        check_offer(provider, version, f"serves[{index}]")
    with transaction.atomic():
        ServedBy.objects.filter(service_version=service_version).exclude(
            model_version__in=[v.pk for v in versions]
        ).delete()
        return [
            offer_model(provider=provider, actor=actor, model_version=v, service_version=service_version)
            for v in versions
        ]


def conflict_if_slug_taken(owner: Tenant, slug: str) -> None:
    """One namespace per tenant: a catalog model's slug may not be one of the tenant's service slugs."""
    from django.apps import apps

    services = apps.get_model("publishing", "Service")
    if services._default_manager.filter(publisher=owner, slug=slug).exists():
        raise ConflictError(
            f"'{owner.slug}/{slug}' already names one of your services: model and service ids share one namespace.",
            details={"field": "slug"},
        )
