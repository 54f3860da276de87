"""A catalog model's offers as the proxy routes them: the active service versions (of any tenant) linked to its ready
versions, cached by model id so that a warm call reads no SQL. `<owner>/<model-slug>` names every ready version's
offers, `<owner>/<model-slug>@<version>` one version's. Publishing is reached only through `ServedBy`'s string
foreign key (the apps never import each other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.cache import cache

from apps.catalog.models import CatalogModel, ModelStatus, ModelVersion, ServedBy, VersionStatus

CACHE_SECONDS = 60
# Models whose offers may be called: published, or deprecated (still served while consumers move on).
CALLABLE_MODEL = (ModelStatus.PUBLISHED, ModelStatus.DEPRECATED)
CALLABLE_VERSION = (VersionStatus.READY, VersionStatus.DEPRECATED)
ACTIVE_SERVICE_VERSION = "active"  # publishing's Status.ACTIVE (not imported: the apps are peers)


@dataclass(frozen=True)
class ModelOffers:
    """What routing needs of a catalog model id: the model (for access checks) and its offers' service versions."""

    model_id: str  # as called: `<owner>/<model-slug>` or `…@<version>`
    catalog_model_id: str
    owner_id: str
    version: str | None
    service_version_ids: tuple[str, ...]

    def as_cache(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "catalog_model_id": self.catalog_model_id,
            "owner_id": self.owner_id,
            "version": self.version,
            "service_version_ids": list(self.service_version_ids),
        }

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> ModelOffers:
        return cls(**{**data, "service_version_ids": tuple(data["service_version_ids"])})


def cache_key(model_id: str) -> str:
    return f"catalog:offers:{model_id}"


def split_model_id(model_id: str) -> tuple[str, str, str | None] | None:
    """`owner/model-slug[@version]` → its parts, None when the id cannot name a catalog model."""
    if not isinstance(model_id, str) or model_id.count("/") != 1:
        return None
    base, _, version = model_id.partition("@")
    owner, _, slug = base.partition("/")
    if not owner or not slug or (model_id.count("@") and not version):
        return None
    return owner, slug, version or None


def _load(model_id: str) -> ModelOffers | None:
    parts = split_model_id(model_id)
    if parts is None:
        return None
    owner, slug, version = parts
    model = (
        CatalogModel.objects.filter(owner__slug=owner, slug=slug, status__in=CALLABLE_MODEL)
        .only("id", "owner_id")
        .first()
    )
    if model is None:
        return None
    versions = ModelVersion.objects.filter(model=model, status__in=CALLABLE_VERSION)
    if version is not None:
        versions = versions.filter(version=version)
        if not versions.exists():
            return None
    links = ServedBy.objects.filter(
        model_version__in=versions, service_version__status=ACTIVE_SERVICE_VERSION
    ).order_by("created_at")
    ids = tuple(dict.fromkeys(str(i) for i in links.values_list("service_version_id", flat=True)))
    return ModelOffers(model_id, str(model.pk), str(model.owner_id), version, ids)


_MISSING = {"missing": True}


def get_model_offers(model_id: str) -> ModelOffers | None:
    """The offers of the catalog model `model_id` names (None when it names no callable catalog model), cached for
    `CACHE_SECONDS` and dropped whenever a link, a version or the model changes."""
    key = cache_key(model_id)
    cached = cache.get(key)
    if cached is not None:
        return None if cached == _MISSING else ModelOffers.from_cache(cached)
    offers = _load(model_id)
    cache.set(key, _MISSING if offers is None else offers.as_cache(), CACHE_SECONDS)
    return offers


def is_model_id(model_id: str) -> bool:
    """Whether `model_id` names a callable catalog model (rather than a service)."""
    return get_model_offers(model_id) is not None


def invalidate_model(model: CatalogModel) -> None:
    """Drop the cached offers of the model (unversioned and each version)."""
    base = f"{model.owner.slug}/{model.slug}"
    versions = ModelVersion.objects.filter(model=model).values_list("version", flat=True)
    cache.delete_many([cache_key(base), *(cache_key(f"{base}@{v}") for v in versions)])


def visible_to(tenant: Any, catalog_model_id: str) -> bool:
    """Whether `tenant` may see (and so call) the catalog model: the catalog's own visibility rules."""
    from apps.catalog.selectors import Viewer, visible_models

    return visible_models(Viewer.of(tenant)).filter(pk=catalog_model_id).exists()
