"""Lineage edges between any of the owner's objects, added under the graph's lock so no cycle can ever form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from apps.catalog import selectors
from apps.catalog.models import EdgeType, Evaluation, LineageEdge, NodeKind, TrainingRun
from apps.catalog.services.catalog_models import resolve_version_ref
from apps.catalog.services.common import audit, require_admin
from apps.catalog.services.datasets import resolve_dataset_ref
from apps.catalog.services.graph import connect, evaluation_label, graph_node, owner_graph, version_label
from apps.catalog.validation import ErrorCollector, clean_choice, clean_text, fail
from apps.tenancy.models import Tenant
from llm_infra_django.errors import ValidationError


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
    require_admin(owner, actor)
    collector = ErrorCollector()
    collector.check("type", lambda: clean_choice(edge_type, "type", EdgeType.values))
    resolved_source = collector.check("source", lambda: _resolve_node(owner, source, "source"))
    resolved_target = collector.check("target", lambda: _resolve_node(owner, target, "target"))
    collector.raise_if_any()
    graph = owner_graph(owner.pk, lock=True)
    source_node = graph_node(graph, *resolved_source)
    target_node = graph_node(graph, *resolved_target)
    edge = connect(graph, source_node, target_node, edge_type)
    audit(
        "catalog_lineage_edge_added",
        owner,
        actor,
        edge,
        after={"source": source_node.label, "target": target_node.label, "type": edge_type},
    )
    return edge
