"""Catalog models and their versions: create, change, move through their state machines, serve by service versions."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from apps.catalog import selectors
from apps.catalog.exceptions import InvalidTransitionError
from apps.catalog.models import (
    CatalogModel,
    Category,
    EdgeType,
    ModelStatus,
    ModelType,
    ModelVersion,
    NodeKind,
    ServedBy,
    VersionStatus,
)
from apps.catalog.services.common import audit, require_admin, require_operational
from apps.catalog.services.evaluations import recompute_quality
from apps.catalog.services.graph import base_model_ref, connect, graph_node, owner_graph, version_label
from apps.catalog.services.offers import conflict_if_slug_taken
from apps.catalog.services.rules import choice_rule, clean_values, commercial_default, number_rule, text_rule
from apps.catalog.validation import (
    ErrorCollector,
    clean_artifacts,
    clean_bool,
    clean_choice,
    clean_languages,
    clean_license,
    clean_optional_whole,
    clean_slug,
    clean_tags,
    fail,
    parse_version,
)
from apps.tenancy import sharing
from apps.tenancy.audit import snapshot
from apps.tenancy.models import SharingPolicy, Tenant, Visibility
from llm_infra_django.errors import BusinessRuleError, ConflictError, ValidationError

MODEL_FIELDS = (
    "name",
    "description",
    "base_model_name",
    "base_model_provider",
    "model_type",
    "architecture",
    "category",
    "tags",
    "languages",
    "license",
    "commercial_use",
    "open_offers",
    "visibility",
)
VERSION_FIELDS = (
    "artifacts",
    "parameter_count",
    "changelog",
    "breaking",
    "status",
    "p50_latency_ms",
    "p95_latency_ms",
    "throughput_tokens_per_s",
)


MODEL_TRANSITIONS: dict[str, list[str]] = {
    ModelStatus.DRAFT: [ModelStatus.EVALUATING, ModelStatus.PUBLISHED, ModelStatus.ARCHIVED],
    ModelStatus.EVALUATING: [ModelStatus.DRAFT, ModelStatus.PUBLISHED, ModelStatus.ARCHIVED],
    ModelStatus.PUBLISHED: [ModelStatus.DEPRECATED, ModelStatus.ARCHIVED],
    ModelStatus.DEPRECATED: [ModelStatus.PUBLISHED, ModelStatus.ARCHIVED],
    ModelStatus.ARCHIVED: [],
}
VERSION_TRANSITIONS: dict[str, list[str]] = {
    VersionStatus.BUILDING: [VersionStatus.EVALUATING, VersionStatus.READY, VersionStatus.FAILED],
    VersionStatus.EVALUATING: [VersionStatus.READY, VersionStatus.FAILED],
    VersionStatus.READY: [VersionStatus.DEPRECATED],
    VersionStatus.FAILED: [VersionStatus.BUILDING],
    VersionStatus.DEPRECATED: [VersionStatus.READY],
}


MODEL_RULES: dict[str, Any] = {
    "name": text_rule(200, required=True),
    "description": text_rule(10_000),
    "base_model_name": text_rule(200),
    "base_model_provider": text_rule(100),
    "model_type": choice_rule(ModelType.values),
    "architecture": text_rule(100),
    "category": choice_rule(Category.values),
    "tags": clean_tags,
    "languages": clean_languages,
    "license": clean_license,
    "commercial_use": clean_bool,
    "open_offers": clean_bool,
    "visibility": choice_rule(Visibility.values),
}
VERSION_RULES: dict[str, Any] = {
    "artifacts": clean_artifacts,
    "parameter_count": clean_optional_whole,
    "changelog": text_rule(20_000),
    "breaking": clean_bool,
    "status": choice_rule(VersionStatus.values),
    "p50_latency_ms": number_rule,
    "p95_latency_ms": number_rule,
    "throughput_tokens_per_s": number_rule,
}


@transaction.atomic
def create_model(*, owner: Tenant, actor: Any, slug: str, values: Mapping[str, Any]) -> CatalogModel:
    """Add a model to the owner's catalog (as a draft: it is listed to others once published)."""
    require_admin(owner, actor)
    require_operational(owner)
    collector = ErrorCollector()
    collector.check("slug", lambda: clean_slug(slug))
    cleaned = clean_values(values, MODEL_RULES, collector)
    if "name" not in values:
        collector.add("name", "This field is required.")
    collector.raise_if_any()
    commercial_default(cleaned)
    cleaned.setdefault("open_offers", cleaned["commercial_use"])
    conflict_if_slug_taken(owner, slug)
    try:
        with transaction.atomic():
            model = CatalogModel.objects.create(owner=owner, slug=slug, **cleaned)
    except IntegrityError:
        raise ConflictError(f"Model '{owner.slug}--{slug}' already exists.", details={"field": "slug"}) from None
    audit("catalog_model_created", owner, actor, model, after=snapshot(model))
    return model


@transaction.atomic
def update_model(*, model: CatalogModel, actor: Any, values: Mapping[str, Any]) -> CatalogModel:
    """Change a model's description, classification, license, visibility (its sharing policy follows) and status
    (through its state machine), all or nothing."""
    require_admin(model.owner, actor)
    values = dict(values)
    status = values.pop("status", None)
    collector = ErrorCollector()
    cleaned = clean_values(values, MODEL_RULES, collector)
    if status is not None:
        collector.check("status", lambda: clean_choice(status, "status", ModelStatus.values))
    collector.raise_if_any()
    locked = CatalogModel.objects.select_for_update().select_related("owner").get(pk=model.pk)
    before = snapshot(locked)
    if "license" in cleaned and "commercial_use" not in cleaned and cleaned["license"] != locked.license:
        commercial_default(cleaned)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    if status is not None:
        _transition_model(locked, status)
    locked.save()
    if "visibility" in cleaned:
        _sync_policy_visibility(locked, actor)
    audit("catalog_model_updated", locked.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


def _transition_model(model: CatalogModel, status: str) -> None:
    """draft → evaluating → published → deprecated → archived; publishing needs a ready version; archived is
    final."""
    if status == model.status:
        return
    allowed = MODEL_TRANSITIONS[model.status]
    if status not in allowed:
        raise InvalidTransitionError(kind="model", current=model.status, target=status, allowed=allowed)
    if status == ModelStatus.PUBLISHED and not model.versions.filter(status=VersionStatus.READY).exists():
        raise BusinessRuleError("Publish a model once one of its versions is ready.")
    model.status = status


def _sync_policy_visibility(model: CatalogModel, actor: Any) -> None:
    policy = SharingPolicy.objects.filter(resource_type=selectors.RESOURCE_MODEL, resource_id=model.sharing_id).first()
    if policy is not None and policy.visibility != model.visibility:
        sharing.update_policy(policy=policy, actor=actor, visibility=model.visibility)


def change_model_status(*, model: CatalogModel, actor: Any, status: str) -> CatalogModel:
    """Move a model to another status (see `_transition_model`)."""
    return update_model(model=model, actor=actor, values={"status": status})


def _check_ready(status: str, artifacts: list[Any], path: str = "status") -> None:
    if status == VersionStatus.READY and not artifacts:
        raise fail(path, "A version becomes ready with at least one artifact.")


def _clean_service_version_ids(value: Any, path: str = "served_by") -> list[uuid.UUID]:
    if not isinstance(value, list):
        raise fail(path, "A list of service version ids.")
    collector = ErrorCollector()
    ids: list[uuid.UUID] = []
    for index, item in enumerate(value):
        try:
            parsed = uuid.UUID(str(item))
        except ValueError:
            collector.add(f"{path}[{index}]", "A service version id (UUID).")
            continue
        if parsed not in ids:
            ids.append(parsed)
    collector.raise_if_any()
    return ids


def _set_served_by(version: ModelVersion, ids: list[uuid.UUID], path: str = "served_by") -> None:
    """Replace the service versions serving this model version; each must be published by the model's owner.

    Publishing is reached only through the string foreign key of `ServedBy` (the apps never import each other)."""
    service_versions = ServedBy._meta.get_field("service_version").related_model
    owned = set(
        service_versions._default_manager.filter(pk__in=ids, service__publisher_id=version.model.owner_id).values_list(
            "pk", flat=True
        )
    )
    missing = {
        f"{path}[{index}]": ["No service version of this tenant has this id."]
        for index, i in enumerate(ids)
        if i not in owned
    }
    if missing:
        raise ValidationError(fields=missing)
    # Only the owner's own links: other tenants' offers of the model stay (see services/offers.py).
    ServedBy.objects.filter(
        model_version=version, service_version__service__publisher_id=version.model.owner_id
    ).exclude(service_version_id__in=ids).delete()
    present = set(ServedBy.objects.filter(model_version=version).values_list("service_version_id", flat=True))
    ServedBy.objects.bulk_create(
        [ServedBy(model_version=version, service_version_id=i) for i in ids if i not in present]
    )


@transaction.atomic
def create_version(
    *,
    model: CatalogModel,
    actor: Any,
    version: str,
    values: Mapping[str, Any],
    served_by: Any = None,
) -> ModelVersion:
    """Add a version strictly greater (SemVer precedence) than every existing version of the model."""
    require_admin(model.owner, actor)
    collector = ErrorCollector()
    parsed = collector.check("version", lambda: parse_version(version))
    cleaned = clean_values(values, VERSION_RULES, collector)
    ids = collector.check("served_by", lambda: _clean_service_version_ids([] if served_by is None else served_by))
    status = cleaned.get("status", VersionStatus.BUILDING)
    if status == VersionStatus.DEPRECATED:
        collector.add("status", "A new version starts as building, evaluating, ready or failed.")
    if not any(path.startswith("artifacts") for path in collector.errors):
        collector.check("status", lambda: _check_ready(status, cleaned.get("artifacts", [])))
    collector.raise_if_any()
    locked = CatalogModel.objects.select_for_update().select_related("owner").get(pk=model.pk)
    greatest = max(
        (parse_version(v) for v in ModelVersion.objects.filter(model=locked).values_list("version", flat=True)),
        default=None,
    )
    if greatest is not None and parsed <= greatest:
        raise ValidationError(
            fields={"version": [f"{version} is not greater than the greatest version {greatest} of this model."]},
            code="validation_error",
        )
    created = ModelVersion.objects.create(
        model=locked,
        version=str(parsed),
        major=parsed.major,
        minor=parsed.minor,
        patch=parsed.patch,
        prerelease=parsed.prerelease or "",
        **cleaned,
    )
    if ids:
        _set_served_by(created, ids)
    graph = owner_graph(locked.owner_id, lock=True)
    node = graph_node(graph, NodeKind.MODEL_VERSION, str(created.pk), version_label(created))
    if locked.base_model_name.strip():
        base = graph_node(graph, NodeKind.BASE_MODEL, base_model_ref(locked), base_model_ref(locked))
        connect(graph, node, base, EdgeType.DERIVED_FROM)
    recompute_quality(created)
    audit("catalog_version_created", locked.owner, actor, created, after=snapshot(created))
    return created


@transaction.atomic
def update_version(
    *,
    version: ModelVersion,
    actor: Any,
    values: Mapping[str, Any],
    served_by: Any = None,
) -> ModelVersion:
    """Change a version's status (by its state machine), changelog, performance figures or serving services;
    artifacts can change only while it is building."""
    model = version.model
    require_admin(model.owner, actor)
    collector = ErrorCollector()
    cleaned = clean_values(values, VERSION_RULES, collector)
    ids = collector.check("served_by", lambda: _clean_service_version_ids(served_by)) if served_by is not None else None
    collector.raise_if_any()
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    locked.model = model
    before = snapshot(locked)
    if "artifacts" in cleaned and locked.status != VersionStatus.BUILDING and cleaned["artifacts"] != locked.artifacts:
        raise ConflictError(
            "Artifacts of a version can change only while it is building.", details={"field": "artifacts"}
        )
    target = cleaned.pop("status", locked.status)
    if target != locked.status:
        allowed = VERSION_TRANSITIONS[locked.status]
        if target not in allowed:
            raise InvalidTransitionError(kind="version", current=locked.status, target=target, allowed=allowed)
    _check_ready(target if target != locked.status else "", cleaned.get("artifacts", locked.artifacts))
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.status = target
    locked.save()
    if ids is not None:
        _set_served_by(locked, ids)
    recompute_quality(locked)
    audit("catalog_version_updated", model.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


def _is_version(text: str) -> bool:
    try:
        parse_version(text)
    except ValidationError:
        return False
    return True


def resolve_version_ref(owner: Tenant, ref: Any, path: str) -> ModelVersion:
    """One of the owner's versions, by id or `handle@version`."""
    text = str(ref or "").strip()
    queryset = ModelVersion.objects.filter(model__owner=owner).select_related("model__owner")
    found = None
    if "@" in text:
        handle, _, number = text.rpartition("@")
        parts = selectors.split_handle(handle)
        if parts and parts[0] == owner.slug and _is_version(number):
            found = queryset.filter(model__slug=parts[1], version=number).first()
    elif selectors._is_uuid(text):
        found = queryset.filter(pk=text).first()
    if found is None:
        raise fail(path, f"No model version of tenant '{owner.slug}' is {text!r} (use its id or handle@version).")
    return found
