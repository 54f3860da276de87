"""The owner's lineage graph as the services write it: nodes by reference, edges added under the graph's lock."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.catalog import lineage
from apps.catalog.exceptions import LineageCycleError
from apps.catalog.models import CatalogModel, Evaluation, LineageEdge, LineageGraph, LineageNode, ModelVersion
from llm_infra_django.errors import ConflictError, ValidationError


def owner_graph(owner_id: Any, *, lock: bool) -> LineageGraph:
    """The owner's graph (created on first use); with `lock`, its row is locked until the transaction ends."""
    graph, _ = LineageGraph.objects.get_or_create(owner_id=owner_id)
    if lock:
        graph = LineageGraph.objects.select_for_update().get(pk=graph.pk)
    return graph


def graph_node(graph: LineageGraph, kind: str, ref: str, label: str) -> LineageNode:
    node, created = LineageNode.objects.get_or_create(graph=graph, kind=kind, ref=ref, defaults={"label": label[:255]})
    if not created and node.label != label[:255]:
        node.label = label[:255]
        node.save(update_fields=["label"])
    return node


def connect(graph: LineageGraph, source: LineageNode, target: LineageNode, edge_type: str) -> LineageEdge:
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
