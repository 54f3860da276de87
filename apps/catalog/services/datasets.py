"""Datasets and their provenance facts (license, PII, certifications, checksum); each is a lineage node of its owner."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from apps.catalog import selectors
from apps.catalog.models import Dataset, LineageNode, NodeKind
from apps.catalog.services.common import audit, require_admin, require_operational
from apps.catalog.services.graph import graph_node, owner_graph
from apps.catalog.services.rules import choice_rule, clean_values, commercial_default, text_rule
from apps.catalog.validation import (
    ErrorCollector,
    clean_bool,
    clean_certifications,
    clean_license,
    clean_optional_whole,
    clean_sha256,
    clean_slug,
    clean_sources,
    fail,
)
from apps.tenancy.audit import snapshot
from apps.tenancy.models import Tenant, Visibility
from llm_infra_django.errors import ConflictError

DATASET_FIELDS = (
    "name",
    "description",
    "sources",
    "license",
    "commercial_use",
    "derivatives",
    "redistribution",
    "pii_detected",
    "pii_removed",
    "contains_health_data",
    "certifications",
    "checksum_sha256",
    "size_bytes",
    "record_count",
    "visibility",
)


DATASET_RULES: dict[str, Any] = {
    "name": text_rule(200, required=True),
    "description": text_rule(10_000),
    "sources": clean_sources,
    "license": clean_license,
    "commercial_use": clean_bool,
    "derivatives": clean_bool,
    "redistribution": clean_bool,
    "pii_detected": clean_bool,
    "pii_removed": clean_bool,
    "contains_health_data": clean_bool,
    "certifications": clean_certifications,
    "checksum_sha256": lambda value, path: clean_sha256(value, path) if value else "",
    "size_bytes": clean_optional_whole,
    "record_count": clean_optional_whole,
    "visibility": choice_rule(Visibility.values),
}


@transaction.atomic
def create_dataset(*, owner: Tenant, actor: Any, slug: str, values: Mapping[str, Any]) -> Dataset:
    """Register a dataset with its provenance (it becomes a lineage node of the owner)."""
    require_admin(owner, actor)
    require_operational(owner)
    collector = ErrorCollector()
    collector.check("slug", lambda: clean_slug(slug))
    cleaned = clean_values(values, DATASET_RULES, collector)
    if "name" not in values:
        collector.add("name", "This field is required.")
    collector.raise_if_any()
    commercial_default(cleaned)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(owner=owner, slug=slug, **cleaned)
    except IntegrityError:
        raise ConflictError(f"Dataset '{owner.slug}--{slug}' already exists.", details={"field": "slug"}) from None
    graph_node(owner_graph(owner.pk, lock=False), NodeKind.DATASET, str(dataset.pk), dataset.name)
    audit("catalog_dataset_created", owner, actor, dataset, after=snapshot(dataset))
    return dataset


@transaction.atomic
def update_dataset(*, dataset: Dataset, actor: Any, values: Mapping[str, Any]) -> Dataset:
    """Change a dataset's provenance facts (its lineage node keeps its label in step)."""
    require_admin(dataset.owner, actor)
    collector = ErrorCollector()
    cleaned = clean_values(values, DATASET_RULES, collector)
    collector.raise_if_any()
    locked = Dataset.objects.select_for_update().select_related("owner").get(pk=dataset.pk)
    before = snapshot(locked)
    if "license" in cleaned and "commercial_use" not in cleaned and cleaned["license"] != locked.license:
        commercial_default(cleaned)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.save()
    if "name" in cleaned:
        LineageNode.objects.filter(graph__owner=locked.owner, kind=NodeKind.DATASET, ref=str(locked.pk)).update(
            label=locked.name[:255]
        )
    audit("catalog_dataset_updated", locked.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


def resolve_dataset_ref(owner: Tenant, ref: Any, path: str) -> Dataset:
    """One of the owner's datasets, by id or handle."""
    text = str(ref or "").strip()
    queryset = Dataset.objects.filter(owner=owner).select_related("owner")
    parts = selectors.split_handle(text)
    found = None
    if parts and parts[0] == owner.slug:
        found = queryset.filter(slug=parts[1]).first()
    elif selectors._is_uuid(text):
        found = queryset.filter(pk=text).first()
    if found is None:
        raise fail(path, f"No dataset of tenant '{owner.slug}' is {text!r} (use its id or handle).")
    return found
