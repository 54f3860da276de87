"""Celery tasks of the catalog app: running an evaluation through the configured evaluator, and its recovery."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="catalog.run_evaluation")
def run_evaluation_task(evaluation_id: str) -> str:
    """Run one pending evaluation (queued after the commit that created it)."""
    from apps.catalog.services import run_evaluation

    return run_evaluation(evaluation_id=evaluation_id)


@shared_task(name="catalog.recover_evaluations")
def recover_evaluations_task() -> dict[str, int]:
    """Queue lost pending evaluations again and fail runs past their timeout (scheduled every 5 minutes)."""
    from apps.catalog.services import recover_evaluations

    return recover_evaluations()
