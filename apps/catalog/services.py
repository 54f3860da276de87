"""State changes of the catalog: models, versions, datasets, training runs, evaluations and lineage edges.

Each function checks the actor's role (admin of the owner tenant), validates everything before writing, runs in
one transaction and writes an audit entry. Lineage writes lock the owner's graph row first, so concurrent inserts
are serialised and a cycle can never be formed by two edges added at the same time.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.catalog import lineage, selectors
from apps.catalog.compliance import license_allows_commercial_use
from apps.catalog.conf import catalog_settings
from apps.catalog.exceptions import InvalidTransitionError, LineageCycleError
from apps.catalog.models import (
    Benchmark,
    CatalogModel,
    Category,
    Dataset,
    Dimension,
    EdgeType,
    Evaluation,
    EvaluationSource,
    EvaluationStatus,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelStatus,
    ModelType,
    ModelVersion,
    NodeKind,
    ServedBy,
    TrainingRun,
    TrainingStatus,
    VersionStatus,
)
from apps.catalog.quality import QualityScore, quality_score
from apps.catalog.validation import (
    ErrorCollector,
    clean_artifacts,
    clean_bool,
    clean_certifications,
    clean_choice,
    clean_json_object,
    clean_languages,
    clean_license,
    clean_number,
    clean_optional_whole,
    clean_scores,
    clean_sha256,
    clean_slug,
    clean_sources,
    clean_tags,
    clean_text,
    fail,
    parse_version,
    unknown_fields,
)
from apps.tenancy import sharing
from apps.tenancy.audit import acting_user, record_audit, snapshot
from apps.tenancy.models import Role, SharingPolicy, Tenant, Visibility
from apps.tenancy.services import require_role
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
TRAINING_FIELDS = (
    "name",
    "hyperparameters",
    "infrastructure",
    "status",
    "started_at",
    "finished_at",
    "duration_seconds",
    "cost_usd",
)
EVALUATION_FIELDS = ("benchmark", "name", "benchmark_version", "dimension", "score", "scores", "status", "error", "run")
EVALUATION_UPDATE_FIELDS = ("score", "scores", "status", "error")

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
# The part of the quality score each standard benchmark feeds (custom benchmarks say it themselves).
BENCHMARK_DIMENSIONS: dict[str, str] = {
    Benchmark.MMLU: Dimension.ACCURACY,
    Benchmark.HELLASWAG: Dimension.ACCURACY,
    Benchmark.TRUTHFULQA: Dimension.ACCURACY,
    Benchmark.HUMANEVAL: Dimension.ACCURACY,
    Benchmark.TOXICITY: Dimension.SAFETY,
    Benchmark.BIAS: Dimension.SAFETY,
    Benchmark.ROBUSTNESS: Dimension.ROBUSTNESS,
}


def _require_admin(tenant: Tenant, actor: Any) -> None:
    require_role(tenant, actor, Role.ADMIN)


def _require_operational(tenant: Tenant) -> None:
    if not tenant.is_operational:
        raise ConflictError(f"Tenant '{tenant.slug}' is {tenant.status} and cannot change the catalog.")


def _audit(action: str, tenant: Tenant, actor: Any, obj: Any, before: Any = None, after: Any = None) -> None:
    record_audit(action=action, tenant=tenant, actor=actor, obj=obj, before=before, after=after)


# --- Value rules ---------------------------------------------------------------------------------------------


def _text_rule(max_length: int, *, required: bool = False) -> Any:
    return lambda value, path: clean_text(value, path, max_length=max_length, required=required)


def _choice_rule(choices: Sequence[str]) -> Any:
    return lambda value, path: clean_choice(value, path, choices)


def _number_rule(value: Any, path: str) -> float | None:
    return clean_number(value, path)


MODEL_RULES: dict[str, Any] = {
    "name": _text_rule(200, required=True),
    "description": _text_rule(10_000),
    "base_model_name": _text_rule(200),
    "base_model_provider": _text_rule(100),
    "model_type": _choice_rule(ModelType.values),
    "architecture": _text_rule(100),
    "category": _choice_rule(Category.values),
    "tags": clean_tags,
    "languages": clean_languages,
    "license": clean_license,
    "commercial_use": clean_bool,
    "visibility": _choice_rule(Visibility.values),
}
VERSION_RULES: dict[str, Any] = {
    "artifacts": clean_artifacts,
    "parameter_count": clean_optional_whole,
    "changelog": _text_rule(20_000),
    "breaking": clean_bool,
    "status": _choice_rule(VersionStatus.values),
    "p50_latency_ms": _number_rule,
    "p95_latency_ms": _number_rule,
    "throughput_tokens_per_s": _number_rule,
}
DATASET_RULES: dict[str, Any] = {
    "name": _text_rule(200, required=True),
    "description": _text_rule(10_000),
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
    "visibility": _choice_rule(Visibility.values),
}


def _clean(values: Mapping[str, Any], rules: Mapping[str, Any], collector: ErrorCollector) -> dict[str, Any]:
    """Each value through its rule; errors go to the collector under the field's path."""
    unknown = sorted(set(values) - set(rules))
    for name in unknown:
        collector.add(name, "Unknown field.")
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if name in rules:
            before = len(collector.errors)
            result = collector.check(name, lambda rule=rules[name], value=value, name=name: rule(value, name))
            if len(collector.errors) == before:
                cleaned[name] = result
    return cleaned


def _commercial_default(values: dict[str, Any]) -> None:
    """A license known to allow (or forbid) commercial use sets `commercial_use` when the caller gives none."""
    if "commercial_use" not in values:
        values["commercial_use"] = bool(license_allows_commercial_use(values.get("license", "")))


# --- Lineage plumbing ----------------------------------------------------------------------------------------


def _graph(owner_id: Any, *, lock: bool) -> LineageGraph:
    """The owner's graph (created on first use); with `lock`, its row is locked until the transaction ends."""
    graph, _ = LineageGraph.objects.get_or_create(owner_id=owner_id)
    if lock:
        graph = LineageGraph.objects.select_for_update().get(pk=graph.pk)
    return graph


def _node(graph: LineageGraph, kind: str, ref: str, label: str) -> LineageNode:
    node, created = LineageNode.objects.get_or_create(graph=graph, kind=kind, ref=ref, defaults={"label": label[:255]})
    if not created and node.label != label[:255]:
        node.label = label[:255]
        node.save(update_fields=["label"])
    return node


def _connect(graph: LineageGraph, source: LineageNode, target: LineageNode, edge_type: str) -> LineageEdge:
    """Add an edge to a graph the caller has locked: kinds checked, duplicates and cycles refused."""
    if not source.graph_id == target.graph_id == graph.pk:
        raise ValueError("Both ends of a lineage edge belong to the graph it is added to.")
    reason = lineage.edge_rule_error(edge_type, source.kind, target.kind)
    if reason:
        raise ValidationError(fields={"type": [reason]})
    if source.pk == target.pk:
        raise LineageCycleError(source=source.label, target=target.label, cycle=[source.label, source.label])
    if LineageEdge.objects.filter(source=source, target=target, edge_type=edge_type).exists():
        raise ConflictError(f"'{source.label}' {edge_type} '{target.label}' is already recorded.")
    if lineage.reaches(target.pk, source.pk):
        labels = [n.label for n in lineage.any_path(target.pk, source.pk)]
        raise LineageCycleError(source=source.label, target=target.label, cycle=[*labels, target.label])
    edge = LineageEdge.objects.create(graph=graph, source=source, target=target, edge_type=edge_type)
    LineageGraph.objects.filter(pk=graph.pk).update(updated_at=timezone.now())
    return edge


def base_model_ref(model: CatalogModel) -> str:
    """The base model's node reference: `provider/name`, or the name alone."""
    name = model.base_model_name.strip()
    provider = model.base_model_provider.strip()
    return f"{provider}/{name}" if provider and not name.startswith(f"{provider}/") else name


def version_label(version: ModelVersion) -> str:
    return f"{version.model.handle}@{version.version}"


def evaluation_label(evaluation: Evaluation) -> str:
    return f"{evaluation.benchmark_name} {evaluation.benchmark_version}".strip()


# --- Models --------------------------------------------------------------------------------------------------


@transaction.atomic
def create_model(*, owner: Tenant, actor: Any, slug: str, values: Mapping[str, Any]) -> CatalogModel:
    """Add a model to the owner's catalog (as a draft: it is listed to others once published)."""
    _require_admin(owner, actor)
    _require_operational(owner)
    collector = ErrorCollector()
    collector.check("slug", lambda: clean_slug(slug))
    cleaned = _clean(values, MODEL_RULES, collector)
    if "name" not in values:
        collector.add("name", "This field is required.")
    collector.raise_if_any()
    _commercial_default(cleaned)
    try:
        with transaction.atomic():
            model = CatalogModel.objects.create(owner=owner, slug=slug, **cleaned)
    except IntegrityError:
        raise ConflictError(f"Model '{owner.slug}--{slug}' already exists.", details={"field": "slug"}) from None
    _audit("catalog_model_created", owner, actor, model, after=snapshot(model))
    return model


@transaction.atomic
def update_model(*, model: CatalogModel, actor: Any, values: Mapping[str, Any]) -> CatalogModel:
    """Change a model's description, classification, license, visibility (its sharing policy follows) and status
    (through its state machine), all or nothing."""
    _require_admin(model.owner, actor)
    values = dict(values)
    status = values.pop("status", None)
    collector = ErrorCollector()
    cleaned = _clean(values, MODEL_RULES, collector)
    if status is not None:
        collector.check("status", lambda: clean_choice(status, "status", ModelStatus.values))
    collector.raise_if_any()
    locked = CatalogModel.objects.select_for_update().select_related("owner").get(pk=model.pk)
    before = snapshot(locked)
    if "license" in cleaned and "commercial_use" not in cleaned and cleaned["license"] != locked.license:
        _commercial_default(cleaned)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    if status is not None:
        _transition_model(locked, status)
    locked.save()
    if "visibility" in cleaned:
        _sync_policy_visibility(locked, actor)
    _audit("catalog_model_updated", locked.owner, actor, locked, before=before, after=snapshot(locked))
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


# --- Versions ------------------------------------------------------------------------------------------------


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
    ServedBy.objects.filter(model_version=version).exclude(service_version_id__in=ids).delete()
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
    _require_admin(model.owner, actor)
    collector = ErrorCollector()
    parsed = collector.check("version", lambda: parse_version(version))
    cleaned = _clean(values, VERSION_RULES, collector)
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
    graph = _graph(locked.owner_id, lock=True)
    node = _node(graph, NodeKind.MODEL_VERSION, str(created.pk), version_label(created))
    if locked.base_model_name.strip():
        base = _node(graph, NodeKind.BASE_MODEL, base_model_ref(locked), base_model_ref(locked))
        _connect(graph, node, base, EdgeType.DERIVED_FROM)
    recompute_quality(created)
    _audit("catalog_version_created", locked.owner, actor, created, after=snapshot(created))
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
    _require_admin(model.owner, actor)
    collector = ErrorCollector()
    cleaned = _clean(values, VERSION_RULES, collector)
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
    _audit("catalog_version_updated", model.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


# --- Datasets and training runs ------------------------------------------------------------------------------


@transaction.atomic
def create_dataset(*, owner: Tenant, actor: Any, slug: str, values: Mapping[str, Any]) -> Dataset:
    """Register a dataset with its provenance (it becomes a lineage node of the owner)."""
    _require_admin(owner, actor)
    _require_operational(owner)
    collector = ErrorCollector()
    collector.check("slug", lambda: clean_slug(slug))
    cleaned = _clean(values, DATASET_RULES, collector)
    if "name" not in values:
        collector.add("name", "This field is required.")
    collector.raise_if_any()
    _commercial_default(cleaned)
    try:
        with transaction.atomic():
            dataset = Dataset.objects.create(owner=owner, slug=slug, **cleaned)
    except IntegrityError:
        raise ConflictError(f"Dataset '{owner.slug}--{slug}' already exists.", details={"field": "slug"}) from None
    _node(_graph(owner.pk, lock=False), NodeKind.DATASET, str(dataset.pk), dataset.name)
    _audit("catalog_dataset_created", owner, actor, dataset, after=snapshot(dataset))
    return dataset


@transaction.atomic
def update_dataset(*, dataset: Dataset, actor: Any, values: Mapping[str, Any]) -> Dataset:
    """Change a dataset's provenance facts (its lineage node keeps its label in step)."""
    _require_admin(dataset.owner, actor)
    collector = ErrorCollector()
    cleaned = _clean(values, DATASET_RULES, collector)
    collector.raise_if_any()
    locked = Dataset.objects.select_for_update().select_related("owner").get(pk=dataset.pk)
    before = snapshot(locked)
    if "license" in cleaned and "commercial_use" not in cleaned and cleaned["license"] != locked.license:
        _commercial_default(cleaned)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    locked.save()
    if "name" in cleaned:
        LineageNode.objects.filter(graph__owner=locked.owner, kind=NodeKind.DATASET, ref=str(locked.pk)).update(
            label=locked.name[:255]
        )
    _audit("catalog_dataset_updated", locked.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


def _clean_training(values: Mapping[str, Any], collector: ErrorCollector) -> dict[str, Any]:
    rules: dict[str, Any] = {
        "name": _text_rule(200, required=True),
        "hyperparameters": clean_json_object,
        "infrastructure": clean_json_object,
        "status": _choice_rule(TrainingStatus.values),
        "started_at": _datetime_rule,
        "finished_at": _datetime_rule,
        "duration_seconds": _number_rule,
        "cost_usd": _money_rule,
    }
    cleaned = _clean(values, rules, collector)
    started, finished = cleaned.get("started_at"), cleaned.get("finished_at")
    if started and finished:
        if finished < started:
            collector.add("finished_at", "Ends before it starts.")
        elif cleaned.get("duration_seconds") is None:
            cleaned["duration_seconds"] = (finished - started).total_seconds()
    return cleaned


def _datetime_rule(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = parse_datetime(value.strip())
        except ValueError:
            value = None
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise fail(path, "A date and time with a time zone (ISO 8601).")
    try:  # in UTC: PostgreSQL refuses offsets beyond ±15:59 and times before year 1
        return value.astimezone(UTC)
    except OverflowError:
        raise fail(path, "This time is out of range in UTC.") from None


def _money_rule(value: Any, path: str) -> Decimal | None:
    if value is None:
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise fail(path, "An amount in USD, e.g. 12.50.") from None
    if not amount.is_finite() or amount < 0 or amount >= Decimal(10) ** 14:
        raise fail(path, "An amount in USD, e.g. 12.50.")
    return amount.quantize(Decimal("0.000001"))


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


@transaction.atomic
def create_training_run(
    *,
    owner: Tenant,
    actor: Any,
    values: Mapping[str, Any],
    datasets: Sequence[Any] = (),
    model_version: Any = None,
) -> TrainingRun:
    """Record a training run: it is trained on the datasets, and the version it produced derives from it."""
    _require_admin(owner, actor)
    collector = ErrorCollector()
    cleaned = _clean_training(values, collector)
    if "name" not in values:
        collector.add("name", "This field is required.")
    found_datasets: list[Dataset] = []
    for index, ref in enumerate(datasets):
        found = collector.check(
            f"datasets[{index}]", lambda ref=ref, index=index: resolve_dataset_ref(owner, ref, f"datasets[{index}]")
        )
        if found is not None and found not in found_datasets:
            found_datasets.append(found)
    produced = None
    if model_version:
        produced = collector.check("model_version", lambda: resolve_version_ref(owner, model_version, "model_version"))
    collector.raise_if_any()
    run = TrainingRun.objects.create(owner=owner, model_version=produced, **cleaned)
    run.datasets.set(found_datasets)
    graph = _graph(owner.pk, lock=True)
    run_node = _node(graph, NodeKind.TRAINING_RUN, str(run.pk), run.name)
    for dataset in found_datasets:
        _connect(graph, run_node, _node(graph, NodeKind.DATASET, str(dataset.pk), dataset.name), EdgeType.TRAINED_ON)
    if produced is not None:
        version_node = _node(graph, NodeKind.MODEL_VERSION, str(produced.pk), version_label(produced))
        _connect(graph, version_node, run_node, EdgeType.DERIVED_FROM)
    _audit("catalog_training_run_created", owner, actor, run, after=snapshot(run))
    return run


# --- Lineage edges -------------------------------------------------------------------------------------------


def _resolve_node(owner: Tenant, reference: Any, path: str) -> tuple[str, str, str]:
    """(kind, ref, label) of a node reference `{"kind": …, "ref": …}` naming one of the owner's objects (a base
    model by its name)."""
    if not isinstance(reference, Mapping):
        raise fail(path, 'An object like {"kind": "dataset", "ref": "<id or handle>"}.')
    unknown = sorted(set(reference) - {"kind", "ref"})
    if unknown:
        raise ValidationError(fields={f"{path}.{name}": ["Unknown field."] for name in unknown})
    kind = clean_choice(reference.get("kind"), f"{path}.kind", NodeKind.values)
    ref = reference.get("ref")
    where = f"{path}.ref"
    if kind == NodeKind.BASE_MODEL:
        name = clean_text(ref, where, max_length=200)
        return kind, name, name
    if kind == NodeKind.MODEL_VERSION:
        version = resolve_version_ref(owner, ref, where)
        return kind, str(version.pk), version_label(version)
    if kind == NodeKind.DATASET:
        dataset = resolve_dataset_ref(owner, ref, where)
        return kind, str(dataset.pk), dataset.name
    text = str(ref or "").strip()
    if kind == NodeKind.TRAINING_RUN:
        run = TrainingRun.objects.filter(owner=owner, pk=text).first() if selectors._is_uuid(text) else None
        if run is None:
            raise fail(where, f"No training run of tenant '{owner.slug}' has the id {text!r}.")
        return kind, str(run.pk), run.name
    evaluation = (
        Evaluation.objects.filter(model_version__model__owner=owner, pk=text).first()
        if selectors._is_uuid(text)
        else None
    )
    if evaluation is None:
        raise fail(where, f"No evaluation of tenant '{owner.slug}' has the id {text!r}.")
    return kind, str(evaluation.pk), evaluation_label(evaluation)


@transaction.atomic
def add_lineage_edge(
    *, owner: Tenant, actor: Any, source: Mapping[str, Any], target: Mapping[str, Any], edge_type: str
) -> LineageEdge:
    """Record "source <edge_type> target" in the owner's graph (nodes created on first mention).

    The graph row is locked before the cycle check and released at commit, so two edges that would together
    close a cycle cannot both be added, whatever the concurrency (one gets a 409 `lineage_cycle`)."""
    _require_admin(owner, actor)
    collector = ErrorCollector()
    collector.check("type", lambda: clean_choice(edge_type, "type", EdgeType.values))
    resolved_source = collector.check("source", lambda: _resolve_node(owner, source, "source"))
    resolved_target = collector.check("target", lambda: _resolve_node(owner, target, "target"))
    collector.raise_if_any()
    graph = _graph(owner.pk, lock=True)
    source_node = _node(graph, *resolved_source)
    target_node = _node(graph, *resolved_target)
    edge = _connect(graph, source_node, target_node, edge_type)
    _audit(
        "catalog_lineage_edge_added",
        owner,
        actor,
        edge,
        after={"source": source_node.label, "target": target_node.label, "type": edge_type},
    )
    return edge


# --- Evaluations and the quality score -----------------------------------------------------------------------


def _clean_score(value: Any, path: str = "score") -> Decimal | None:
    number = clean_number(value, path, minimum=0, maximum=100)
    return None if number is None else Decimal(repr(number)).quantize(Decimal("0.001"))


def _evaluation_dimension(benchmark: str, dimension: Any, collector: ErrorCollector) -> str:
    if benchmark == Benchmark.CUSTOM:
        if dimension is None:
            return Dimension.ACCURACY
        return collector.check("dimension", lambda: clean_choice(dimension, "dimension", Dimension.values)) or ""
    fixed = BENCHMARK_DIMENSIONS.get(benchmark, Dimension.NONE)
    if dimension is not None and dimension != fixed:
        collector.add("dimension", f"{benchmark} always feeds the {fixed} part; leave dimension out.")
    return fixed


@transaction.atomic
def submit_evaluation(*, version: ModelVersion, actor: Any, values: Mapping[str, Any]) -> Evaluation:
    """Record a benchmark result of a version (`score` 0-100), or, with `run`, ask the configured evaluator for it
    (a pending evaluation, run by a Celery task after commit). The quality score is recomputed."""
    from apps.catalog.evaluator import is_configured

    model = version.model
    _require_admin(model.owner, actor)
    unknown_fields(values, EVALUATION_FIELDS)
    collector = ErrorCollector()
    benchmark = collector.check(
        "benchmark", lambda: clean_choice(values.get("benchmark"), "benchmark", Benchmark.values)
    )
    name = benchmark or ""
    if benchmark == Benchmark.CUSTOM:
        name = collector.check("name", lambda: clean_text(values.get("name"), "name", max_length=100)) or ""
    elif values.get("name") not in (None, "", benchmark):
        collector.add("name", "Only custom benchmarks are named; leave name out.")
    benchmark_version = collector.check(
        "benchmark_version",
        lambda: clean_text(values.get("benchmark_version", ""), "benchmark_version", max_length=50, required=False),
    )
    dimension = _evaluation_dimension(benchmark or "", values.get("dimension"), collector)
    score = collector.check("score", lambda: _clean_score(values.get("score")))
    scores = collector.check("scores", lambda: clean_scores(values.get("scores", {})))
    error = collector.check(
        "error", lambda: clean_text(values.get("error", ""), "error", max_length=1000, required=False)
    )
    run = values.get("run", False)
    if not isinstance(run, bool):
        collector.add("run", "true or false.")
    status = values.get("status")
    if run is True:
        if values.get("score") is not None or status is not None:
            collector.add("run", "Either submit a result (score, status) or ask the evaluator to run, not both.")
        elif not is_configured():
            collector.add("run", "No evaluator is configured (MARKETPLACE_CATALOG['EVALUATOR_URL']); submit results.")
        status = EvaluationStatus.PENDING
    else:
        status = status or (EvaluationStatus.COMPLETED if values.get("score") is not None else None)
        if status not in (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED):
            collector.add("status", "Submit a completed result (with its score) or a failed one (with its error).")
        elif status == EvaluationStatus.COMPLETED and values.get("score") is None:
            collector.add("score", "A completed evaluation has a score from 0 to 100.")
        elif status == EvaluationStatus.FAILED and values.get("score") is not None:
            collector.add("score", "A failed evaluation has no score.")
    collector.raise_if_any()
    locked = ModelVersion.objects.select_for_update().get(pk=version.pk)
    locked.model = model
    if locked.status == VersionStatus.FAILED:
        raise ConflictError("The version failed to build; it cannot be evaluated.")
    now = timezone.now()
    try:
        with transaction.atomic():
            evaluation = Evaluation.objects.create(
                model_version=locked,
                benchmark=benchmark,
                benchmark_name=name,
                benchmark_version=benchmark_version or "",
                dimension=dimension,
                score=score,
                scores=scores or {},
                status=status,
                error=error or "",
                source=EvaluationSource.EVALUATOR if run else EvaluationSource.API,
                submitted_by=acting_user(actor),
                completed_at=now if status in (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED) else None,
            )
    except IntegrityError:
        suffix = f" {benchmark_version}" if benchmark_version else ""
        raise ConflictError(
            f"{version_label(locked)} already has a {name}{suffix} evaluation; update it instead.",
            details={"field": "benchmark"},
        ) from None
    graph = _graph(model.owner_id, lock=True)
    version_node = _node(graph, NodeKind.MODEL_VERSION, str(locked.pk), version_label(locked))
    evaluation_node = _node(graph, NodeKind.EVALUATION, str(evaluation.pk), evaluation_label(evaluation))
    _connect(graph, version_node, evaluation_node, EdgeType.EVALUATED_BY)
    recompute_quality(locked)
    _audit("catalog_evaluation_submitted", model.owner, actor, evaluation, after=snapshot(evaluation))
    if run:
        from apps.catalog.tasks import run_evaluation_task

        transaction.on_commit(lambda: run_evaluation_task.delay(str(evaluation.pk)))
    return evaluation


@transaction.atomic
def update_evaluation(*, evaluation: Evaluation, actor: Any, values: Mapping[str, Any]) -> Evaluation:
    """Correct a submitted result (score, raw scores, status, error); the quality score follows."""
    version = evaluation.model_version
    _require_admin(version.model.owner, actor)
    unknown_fields(values, EVALUATION_UPDATE_FIELDS)
    collector = ErrorCollector()
    cleaned: dict[str, Any] = {}
    if "score" in values:
        cleaned["score"] = collector.check("score", lambda: _clean_score(values["score"]))
    if "scores" in values:
        cleaned["scores"] = collector.check("scores", lambda: clean_scores(values["scores"]))
    if "error" in values:
        cleaned["error"] = collector.check(
            "error", lambda: clean_text(values["error"], "error", max_length=1000, required=False)
        )
    if "status" in values:
        cleaned["status"] = collector.check(
            "status",
            lambda: clean_choice(values["status"], "status", [EvaluationStatus.COMPLETED, EvaluationStatus.FAILED]),
        )
    collector.raise_if_any()
    locked = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
    before = snapshot(locked)
    for name, value in cleaned.items():
        setattr(locked, name, value)
    if locked.status == EvaluationStatus.FAILED:
        locked.score = None
    if locked.status == EvaluationStatus.COMPLETED and locked.score is None:
        raise ValidationError(fields={"score": ["A completed evaluation has a score from 0 to 100."]})
    if locked.status in (EvaluationStatus.COMPLETED, EvaluationStatus.FAILED) and "status" in cleaned:
        locked.completed_at = timezone.now()
    locked.save()
    recompute_quality(version)
    _audit("catalog_evaluation_updated", version.model.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


@transaction.atomic
def delete_evaluation(*, evaluation: Evaluation, actor: Any) -> None:
    """Withdraw a result: the evaluation, its lineage node and edges go; the quality score follows."""
    version = evaluation.model_version
    owner = version.model.owner
    _require_admin(owner, actor)
    before = snapshot(evaluation)
    LineageNode.objects.filter(graph__owner=owner, kind=NodeKind.EVALUATION, ref=str(evaluation.pk)).delete()
    evaluation_id = str(evaluation.pk)
    evaluation.delete()
    recompute_quality(version)
    record_audit(
        action="catalog_evaluation_deleted",
        tenant=owner,
        actor=actor,
        object_type="catalog.evaluation",
        object_id=evaluation_id,
        before=before,
    )


def recompute_quality(version: ModelVersion) -> QualityScore:
    """Store the version's quality score (from its latest completed result per benchmark and its p95 latency), and
    its model's (that of the model's latest version, else of its greatest scored version)."""
    latest: dict[str, Evaluation] = {}
    completed = Evaluation.objects.filter(
        model_version_id=version.pk, status=EvaluationStatus.COMPLETED, score__isnull=False
    ).order_by("completed_at", "created_at", "id")
    for evaluation in completed:
        latest[evaluation.benchmark_name] = evaluation
    parts: dict[str, list[float]] = {Dimension.ACCURACY: [], Dimension.SAFETY: [], Dimension.ROBUSTNESS: []}
    for evaluation in latest.values():
        if evaluation.dimension in parts:
            parts[evaluation.dimension].append(float(evaluation.score))
    p95 = ModelVersion.objects.filter(pk=version.pk).values_list("p95_latency_ms", flat=True).first()
    result = quality_score(
        accuracy=parts[Dimension.ACCURACY],
        safety_risk=parts[Dimension.SAFETY],
        p95_latency_ms=p95,
        robustness=parts[Dimension.ROBUSTNESS],
        budget_ms=float(catalog_settings.LATENCY_BUDGET_MS),
    )
    breakdown = {**result.as_dict(), "benchmarks": sorted(latest)}
    ModelVersion.objects.filter(pk=version.pk).update(quality_score=result.score, quality_breakdown=breakdown)
    version.quality_score, version.quality_breakdown = result.score, breakdown
    _refresh_model_quality(version.model_id)
    return result


def _refresh_model_quality(model_id: Any) -> None:
    versions = list(
        ModelVersion.objects.filter(model_id=model_id).only(
            "id", "version", "prerelease", "status", "quality_score", "quality_breakdown"
        )
    )
    chosen = selectors.latest_version(versions) or selectors.greatest_version(
        v for v in versions if v.quality_score is not None
    )
    if chosen is None or chosen.quality_score is None:
        CatalogModel.objects.filter(pk=model_id).update(quality_score=None, quality_breakdown={})
        return
    CatalogModel.objects.filter(pk=model_id).update(
        quality_score=chosen.quality_score, quality_breakdown={**chosen.quality_breakdown, "version": chosen.version}
    )


def run_evaluation(*, evaluation_id: str) -> str:
    """Run a pending evaluation through the evaluator (the Celery task's body): pending → running → completed or
    failed with the evaluator's reason. Returns the final status, or "skipped" when it was not pending."""
    from apps.catalog import evaluator

    with transaction.atomic():
        evaluation = (
            Evaluation.objects.select_for_update()
            .select_related("model_version__model__owner")
            .filter(pk=evaluation_id)
            .first()
        )
        if evaluation is None or evaluation.status != EvaluationStatus.PENDING:
            return "skipped"
        evaluation.status = EvaluationStatus.RUNNING
        evaluation.save(update_fields=["status", "updated_at"])
    version = evaluation.model_version
    payload = {
        "evaluation_id": str(evaluation.pk),
        "model": version.model.handle,
        "version": version.version,
        "benchmark": evaluation.benchmark,
        "benchmark_name": evaluation.benchmark_name,
        "benchmark_version": evaluation.benchmark_version,
        "artifacts": version.artifacts,
        "served_by": [str(link.service_version) for link in version.served_by.select_related("service_version")],
    }
    outcome = evaluator.evaluate(payload)
    with transaction.atomic():
        locked = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
        if locked.status != EvaluationStatus.RUNNING:
            return "skipped"
        before = snapshot(locked)
        if outcome.completed:
            locked.status = EvaluationStatus.COMPLETED
            locked.score = _clean_score(outcome.score)
            locked.scores = outcome.scores
            locked.error = ""
        else:
            locked.status = EvaluationStatus.FAILED
            locked.score = None
            locked.error = outcome.error[:1000]
        locked.completed_at = timezone.now()
        locked.save()
        recompute_quality(version)
        record_audit(
            action=f"catalog_evaluation_{locked.status}",
            tenant=version.model.owner,
            actor=None,
            obj=locked,
            before=before,
            after=snapshot(locked),
        )
    return locked.status


def recover_evaluations(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic repair of evaluator runs: a pending evaluation whose task was lost is queued again (or failed when
    no evaluator is configured any more); a running one past the timeout (its worker died) fails with the reason.
    Returns how many of each."""
    from apps.catalog.evaluator import is_configured
    from apps.catalog.tasks import run_evaluation_task

    now = now or timezone.now()
    requeue_before = now - timedelta(seconds=float(catalog_settings.EVALUATION_REQUEUE_AFTER_S))
    timeout_before = now - timedelta(seconds=float(catalog_settings.EVALUATION_TIMEOUT_S))
    counts = {"requeued": 0, "failed": 0}
    stale = Evaluation.objects.filter(
        Q(status=EvaluationStatus.PENDING, updated_at__lte=requeue_before)
        | Q(status=EvaluationStatus.RUNNING, updated_at__lte=timeout_before)
    ).values_list("pk", flat=True)
    for evaluation_id in list(stale):
        with transaction.atomic():
            evaluation = (
                Evaluation.objects.select_for_update()
                .select_related("model_version__model__owner")
                .filter(pk=evaluation_id)
                .first()
            )
            if evaluation is None:
                continue
            if evaluation.status == EvaluationStatus.PENDING and evaluation.updated_at <= requeue_before:
                if is_configured():
                    evaluation.save(update_fields=["updated_at"])
                    transaction.on_commit(lambda pk=str(evaluation.pk): run_evaluation_task.delay(pk))
                    counts["requeued"] += 1
                    continue
                reason = "No evaluator is configured any more; the run was abandoned."
            elif evaluation.status == EvaluationStatus.RUNNING and evaluation.updated_at <= timeout_before:
                timeout = catalog_settings.EVALUATION_TIMEOUT_S
                reason = f"No result from the evaluator within {timeout} s; the run was abandoned."
            else:
                continue
            before = snapshot(evaluation)
            evaluation.status, evaluation.score, evaluation.error = EvaluationStatus.FAILED, None, reason
            evaluation.completed_at = now
            evaluation.save()
            recompute_quality(evaluation.model_version)
            record_audit(
                action="catalog_evaluation_failed",
                tenant=evaluation.model_version.model.owner,
                actor=None,
                obj=evaluation,
                before=before,
                after=snapshot(evaluation),
            )
            counts["failed"] += 1
    return counts
