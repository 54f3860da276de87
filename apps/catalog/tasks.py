"""Celery tasks of the catalog app: running an evaluation through the configured evaluator, and its recovery."""

from __future__ import annotations

from celery import shared_task

from apps.catalog.services.evaluations import RUN_EVALUATION_TASK, recover_evaluations, run_evaluation


@shared_task(name=RUN_EVALUATION_TASK)
def run_evaluation_task(evaluation_id: str) -> str:
    """Run one pending evaluation (queued after the commit that created it)."""
    return run_evaluation(evaluation_id=evaluation_id)


@shared_task(name="catalog.recover_evaluations")
def recover_evaluations_task() -> dict[str, int]:
    """Queue lost pending evaluations again and fail runs past their timeout (scheduled every 5 minutes)."""
    return recover_evaluations()
