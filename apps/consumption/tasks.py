"""Periodic tasks of the consumption app: SLA checks, reservation reconciliation, raw usage retention."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from apps.consumption.reconcile import prune_usage_records, reconcile_reservations
from apps.consumption.sla import check_sla


@shared_task(name="consumption.check_sla")
def check_sla_task() -> int:
    """Record (and alert) the SLA violations of the last hour; returns how many were new."""
    return len(check_sla())


@shared_task(name="consumption.reconcile_reservations")
def reconcile_reservations_task() -> dict[str, Any]:
    """Settle reservations left unsettled past their deadline from the ledger."""
    return asdict(reconcile_reservations())


@shared_task(name="consumption.prune_usage_records")
def prune_usage_records_task() -> int:
    """Delete raw usage records past the retention period (rollups are kept)."""
    return prune_usage_records()


@shared_task(name="consumption.drain_ledger")
def drain_ledger_task(limit: int = 100_000) -> int:
    """Write what the ledger stream holds to the database (web processes drain it too; this covers quiet periods and
    restarts); returns how many records were written."""
    from apps.consumption.ledger_stream import drain_once

    total = 0
    while total < limit and (written := drain_once()):
        total += written
    return total
