"""Celery tasks of the publishing app: one step of the pipeline (chained by `pipeline.start`), and retirement of
deprecated versions."""

from __future__ import annotations

from celery import shared_task

from apps.publishing import pipeline
from apps.publishing.services import retire_due_versions


@shared_task(name=pipeline.STEP_TASK)
def pipeline_step(run_id: str | None, name: str) -> str | None:
    """Run one step; pass the run id on while the run goes on (a None stops the rest of the chain)."""
    if run_id is None:
        return None
    return run_id if pipeline.run_step(run_id, name) else None


@shared_task(name="publishing.retire_due_versions")
def retire_due_versions_task() -> int:
    """Retire deprecated versions past their grace period."""
    return retire_due_versions()
