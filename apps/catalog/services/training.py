"""Training runs: trained on datasets, producing a model version, both recorded as lineage edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.catalog.models import Dataset, EdgeType, NodeKind, TrainingRun, TrainingStatus
from apps.catalog.services.catalog_models import resolve_version_ref
from apps.catalog.services.common import audit, require_admin
from apps.catalog.services.datasets import resolve_dataset_ref
from apps.catalog.services.graph import connect, graph_node, owner_graph, version_label
from apps.catalog.services.rules import choice_rule, clean_values, number_rule, text_rule
from apps.catalog.validation import ErrorCollector, clean_json_object, fail
from apps.tenancy.audit import snapshot
from apps.tenancy.models import Tenant

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


def _clean_training(values: Mapping[str, Any], collector: ErrorCollector) -> dict[str, Any]:
    rules: dict[str, Any] = {
        "name": text_rule(200, required=True),
        "hyperparameters": clean_json_object,
        "infrastructure": clean_json_object,
        "status": choice_rule(TrainingStatus.values),
        "started_at": _datetime_rule,
        "finished_at": _datetime_rule,
        "duration_seconds": number_rule,
        "cost_usd": _money_rule,
    }
    cleaned = clean_values(values, rules, collector)
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
    require_admin(owner, actor)
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
    graph = owner_graph(owner.pk, lock=True)
    run_node = graph_node(graph, NodeKind.TRAINING_RUN, str(run.pk), run.name)
    for dataset in found_datasets:
        connect(
            graph, run_node, graph_node(graph, NodeKind.DATASET, str(dataset.pk), dataset.name), EdgeType.TRAINED_ON
        )
    if produced is not None:
        version_node = graph_node(graph, NodeKind.MODEL_VERSION, str(produced.pk), version_label(produced))
        connect(graph, version_node, run_node, EdgeType.DERIVED_FROM)
    audit("catalog_training_run_created", owner, actor, run, after=snapshot(run))
    return run
