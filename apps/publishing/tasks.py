"""Celery tasks of the publishing app: the pipeline as a chain, and retirement of deprecated versions."""

from __future__ import annotations

from celery import chain, shared_task

from apps.publishing import pipeline


@shared_task(name="publishing.pipeline_step")
def pipeline_step(run_id: str | None, name: str) -> str | None:
    """Run one step; pass the run id on while the run goes on (a None stops the rest of the chain)."""
    if run_id is None:
        return None
    return run_id if pipeline.run_step(run_id, name) else None


def start_pipeline(run_id: str) -> None:
    """Queue the steps as one chain (runs in-process when there is no broker)."""
    first, *rest = pipeline.STEPS
    chain(pipeline_step.s(run_id, first), *(pipeline_step.s(name) for name in rest)).apply_async()


@shared_task(name="publishing.retire_due_versions")
def retire_due_versions_task() -> int:
    """Retire deprecated versions past their grace period."""
    from apps.publishing.services import retire_due_versions

    return retire_due_versions()
