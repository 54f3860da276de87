"""Evaluations of model versions, submitted or run by the configured evaluator, and the quality score they feed."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from celery import signature
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.catalog import evaluator, selectors
from apps.catalog.conf import catalog_settings
from apps.catalog.models import (
    Benchmark,
    CatalogModel,
    Dimension,
    EdgeType,
    Evaluation,
    EvaluationSource,
    EvaluationStatus,
    LineageNode,
    ModelVersion,
    NodeKind,
    VersionStatus,
)
from apps.catalog.quality import QualityScore, quality_score
from apps.catalog.services.common import audit, require_admin
from apps.catalog.services.graph import connect, evaluation_label, graph_node, owner_graph, version_label
from apps.catalog.validation import ErrorCollector, clean_choice, clean_number, clean_scores, clean_text, unknown_fields
from apps.tenancy.audit import acting_user, record_audit, snapshot
from llm_infra_django.errors import ConflictError, ValidationError

EVALUATION_FIELDS = ("benchmark", "name", "benchmark_version", "dimension", "score", "scores", "status", "error", "run")
EVALUATION_UPDATE_FIELDS = ("score", "scores", "status", "error")
# The Celery task running one evaluation (`apps.catalog.tasks` registers it): queued by this name, so the services
# never import the tasks that import them.
RUN_EVALUATION_TASK = "catalog.run_evaluation"


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


def _queue_run(evaluation_id: str) -> None:
    """Queue the evaluator run of a pending evaluation (in-process when there is no broker)."""
    signature(RUN_EVALUATION_TASK, args=(evaluation_id,)).delay()


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
    model = version.model
    require_admin(model.owner, actor)
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
        elif not evaluator.is_configured():
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
    graph = owner_graph(model.owner_id, lock=True)
    version_node = graph_node(graph, NodeKind.MODEL_VERSION, str(locked.pk), version_label(locked))
    evaluation_node = graph_node(graph, NodeKind.EVALUATION, str(evaluation.pk), evaluation_label(evaluation))
    connect(graph, version_node, evaluation_node, EdgeType.EVALUATED_BY)
    recompute_quality(locked)
    audit("catalog_evaluation_submitted", model.owner, actor, evaluation, after=snapshot(evaluation))
    if run:
        transaction.on_commit(lambda: _queue_run(str(evaluation.pk)))
    return evaluation


@transaction.atomic
def update_evaluation(*, evaluation: Evaluation, actor: Any, values: Mapping[str, Any]) -> Evaluation:
    """Correct a submitted result (score, raw scores, status, error); the quality score follows."""
    version = evaluation.model_version
    require_admin(version.model.owner, actor)
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
    audit("catalog_evaluation_updated", version.model.owner, actor, locked, before=before, after=snapshot(locked))
    return locked


@transaction.atomic
def delete_evaluation(*, evaluation: Evaluation, actor: Any) -> None:
    """Withdraw a result: the evaluation, its lineage node and edges go; the quality score follows."""
    version = evaluation.model_version
    owner = version.model.owner
    require_admin(owner, actor)
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
                if evaluator.is_configured():
                    evaluation.save(update_fields=["updated_at"])
                    transaction.on_commit(lambda pk=str(evaluation.pk): _queue_run(pk))
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
