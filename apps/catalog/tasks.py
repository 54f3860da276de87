"""Celery tasks of the catalog app: running an evaluation through the configured evaluator."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="catalog.run_evaluation")
def run_evaluation_task(evaluation_id: str) -> str:
    """Run one pending evaluation (queued after the commit that created it)."""
    from apps.catalog.services import run_evaluation

    return run_evaluation(evaluation_id=evaluation_id)
