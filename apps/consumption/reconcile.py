"""Settles admission reservations left unsettled past their deadline from the ledger (writing the record a dead
process left with its reservation when the ledger has none), and prunes old raw records."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from django.db import transaction
from django.utils import timezone

from apps.consumption import admission
from apps.consumption.conf import consumption_settings
from apps.consumption.local_admission import local
from apps.consumption.models import ApiKey, UsageRecord, is_counted
from apps.consumption.protocol import QUOTAS, CallKeys, SettleArgs, parallel_key
from apps.tenancy import quotas
from apps.tenancy.models import Tenant
from apps.tenancy.money import to_units
from llm_infra_django.redis import get_redis

logger = structlog.get_logger(__name__)

BATCH = 500
PRUNE_BATCH = 10_000
# When nothing tells when a reservation was admitted, its deadline minus the slot margin and the default SLA
# timeout is the best estimate (it only picks the quota period a refund goes to).
DEFAULT_TIMEOUT_MS = 30_000
_RESERVATION = re.compile(r"^ck:\{t:(?P<tenant>[^}]+)\}:resv:(?P<request_id>.+)$")
_INDEX = re.compile(r"^ck:\{t:(?P<tenant>[^}]+)\}:resv-idx$")


@dataclass
class ReconcileReport:
    """What one reconciliation pass did."""

    due: int = 0
    settled_from_ledger: int = 0
    refunded: int = 0
    already_settled: int = 0
    key_unknown: int = 0
    orphans_recorded: int = 0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _reservation_fields(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


class _Context:
    """Per-pass caches: tenants, their metered quota periods, their key ids."""

    def __init__(self) -> None:
        self.tenants: dict[str, Tenant | None] = {}
        self.key_ids: dict[str, list[str]] = {}

    def tenant(self, tenant_id: str) -> Tenant | None:
        if tenant_id not in self.tenants:
            self.tenants[tenant_id] = Tenant.objects.filter(pk=tenant_id).first()
        return self.tenants[tenant_id]

    def keys_of(self, tenant_id: str) -> list[str]:
        if tenant_id not in self.key_ids:
            self.key_ids[tenant_id] = [
                str(k) for k in ApiKey.objects.filter(tenant_id=tenant_id).values_list("pk", flat=True)
            ]
        return self.key_ids[tenant_id]


def keys_for(tenant: Tenant, request_id: str, key_id: str | None, admitted_at: datetime) -> CallKeys:
    """The keys of a reservation's call, rebuilt as admission built them. An unknown key id yields per-key names that
    do not exist (the script leaves absent counters alone)."""
    return CallKeys.of(
        tenant_id=str(tenant.pk),
        key_id=key_id or "unknown",
        request_id=request_id,
        timezone=tenant.timezone,
        periods={name: quotas.get_limit(tenant, name).period for name in QUOTAS},
        now=admitted_at,
    )


def _slot_owner(tenant_id: str, request_id: str, candidates: Iterable[str], client: Any) -> str | None:
    """The key whose parallel-slot set holds the request (only keys with a parallel limit have one)."""
    names = [(key_id, parallel_key(tenant_id, key_id)) for key_id in candidates]
    if not names:
        return None
    if client is None:
        for key_id, name in names:
            slots = local.values.get(name)
            if isinstance(slots, dict) and request_id in slots:
                return key_id
        return None
    pipe = client.pipeline(transaction=False)
    for _, name in names:
        pipe.zscore(name, request_id)
    for (key_id, _), score in zip(names, pipe.execute(), strict=True):
        if score is not None:
            return key_id
    return None


def _settle_one(
    tenant_id: str,
    request_id: str,
    reservation: dict[str, Any],
    record: Mapping[str, Any] | None,
    context: _Context,
    client: Any,
    report: ReconcileReport,
) -> None:
    tenant = context.tenant(tenant_id)
    if tenant is None:
        return
    key_id = reservation.get("key") or (str(record["api_key_id"]) if record else None)
    if key_id is None:
        key_id = _slot_owner(tenant_id, request_id, context.keys_of(tenant_id), client)
    if "at" in reservation:
        admitted_at = datetime.fromtimestamp(int(reservation["at"]) / 1000, UTC)
    elif record is not None:
        admitted_at = record["started_at"]
    else:
        deadline_ms = int(reservation.get("deadline") or time.time() * 1000)
        admitted_at = datetime.fromtimestamp((deadline_ms - admission.SLOT_MARGIN_MS - DEFAULT_TIMEOUT_MS) / 1000, UTC)
    if key_id is None:
        report.key_unknown += 1
        if "budget" in str(reservation.get("charged", "")):
            logger.warning("reservation_budget_not_refunded", request_id=request_id, tenant=tenant.slug)
    keys = keys_for(tenant, request_id, key_id, admitted_at)
    orphan = None
    if record is None and reservation.get("rec"):
        orphan = _write_orphan_record(reservation["rec"])
        record = {
            "prompt_tokens": orphan.prompt_tokens,
            "completion_tokens": orphan.completion_tokens,
            "cost": orphan.cost,
            "status_code": orphan.status_code,
        }
    if record is not None:
        tokens = int(record["prompt_tokens"]) + int(record["completion_tokens"])
        cost_units = to_units(record["cost"])
        counted = is_counted(int(record["status_code"]), record.get("error_code") or "")
    else:
        tokens, cost_units, counted = 0, 0, False
    done = admission.settle_sync(keys, SettleArgs(request_id, tokens, cost_units, counted))
    outcome = "orphan" if orphan is not None else "ledger" if record is not None else "refund"
    if not done:
        report.already_settled += 1
    elif orphan is not None:
        report.orphans_recorded += 1
    elif record is not None:
        report.settled_from_ledger += 1
    else:
        report.refunded += 1
    logger.info(
        "reservation_reconciled", request_id=request_id, tenant=tenant.slug, outcome=outcome, settled=bool(done)
    )


def _write_orphan_record(encoded: str) -> Any:
    """Write the record a request's process left with its reservation (it died before recording the request):
    finished now; idempotent, so a record written meanwhile wins."""
    from apps.consumption.ledger import write_entries
    from apps.consumption.ledger_stream import decode

    entry = decode({"e": encoded})
    entry.finished_at = datetime.now(UTC)
    entry.latency_ms = round((entry.finished_at - entry.started_at).total_seconds() * 1000, 3)
    write_entries([entry])
    logger.warning("usage_recorded_for_lost_worker", request_id=entry.request_id, tenant_id=entry.tenant_id)
    return entry


def _records(request_ids: list[str]) -> dict[str, Mapping[str, Any]]:
    rows = UsageRecord.objects.filter(request_id__in=request_ids).values(
        "request_id",
        "api_key_id",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "status_code",
        "error_code",
        "started_at",
    )
    return {row["request_id"]: row for row in rows}


def _reconcile_redis(client: Any, cutoff_ms: int, report: ReconcileReport) -> None:
    context = _Context()
    for raw_index in client.scan_iter(match="ck:*:resv-idx", count=BATCH):
        index = _text(raw_index)
        match = _INDEX.match(index)
        if match is None:
            continue
        tenant_id = match["tenant"]
        seen: set[str] = set()
        while True:
            due = [_text(r) for r in client.zrangebyscore(index, "-inf", cutoff_ms, start=0, num=BATCH)]
            due = [r for r in due if r not in seen]
            if not due:
                break
            seen.update(due)
            report.due += len(due)
            pipe = client.pipeline(transaction=False)
            for request_id in due:
                pipe.hgetall(f"ck:{{t:{tenant_id}}}:resv:{request_id}")
            reservations = pipe.execute()
            records = _records(due)
            for request_id, raw in zip(due, reservations, strict=True):
                if not raw:
                    client.zrem(index, request_id)  # settled concurrently, or its hash expired: drop the entry
                    report.already_settled += 1
                    continue
                _settle_one(
                    tenant_id, request_id, _reservation_fields(raw), records.get(request_id), context, client, report
                )


# First time the reconciler saw an in-process reservation without a deadline (the twin may not record one).
_local_first_seen: dict[str, int] = {}


def _reconcile_local(now_ms: int, cutoff_ms: int, report: ReconcileReport) -> None:
    context = _Context()
    with local.lock:
        pending = {
            name: dict(value)
            for name, value in local.values.items()
            if isinstance(value, dict) and "tokens" in value and _RESERVATION.match(name)
        }
    for name in list(_local_first_seen):
        if name not in pending:
            _local_first_seen.pop(name)
    due: list[tuple[str, str, dict[str, Any]]] = []
    for name, reservation in pending.items():
        deadline = reservation.get("deadline")
        if deadline is None:
            first_seen = _local_first_seen.setdefault(name, now_ms)
            deadline = first_seen + admission.SLOT_MARGIN_MS + DEFAULT_TIMEOUT_MS
        if int(deadline) <= cutoff_ms:
            match = _RESERVATION.match(name)
            assert match is not None
            due.append((match["tenant"], match["request_id"], reservation))
    report.due += len(due)
    records = _records([request_id for _, request_id, _ in due])
    for tenant_id, request_id, reservation in due:
        fields = {k: ",".join(v) if isinstance(v, list) else v for k, v in reservation.items()}
        _settle_one(tenant_id, request_id, fields, records.get(request_id), context, None, report)
        _local_first_seen.pop(f"ck:{{t:{tenant_id}}}:resv:{request_id}", None)


def reconcile_reservations(*, now_ms: int | None = None) -> ReconcileReport:
    """Settle every reservation whose deadline passed more than `RESERVATION_GRACE_SECONDS` ago: with its usage
    record's actual tokens and cost when the ledger has one; else, when its process left the record to write should
    it die (the proxy does), with that record, written now (a `worker_lost` 499 billed for the prompt); else
    refunded to zero (the request uncounted). Live streams keep pushing their deadline ahead, so only requests
    nobody serves any more are reconciled.
    Idempotent (the settle script does nothing for a reservation already gone). Redis is walked with SCAN over
    the tenants' reservation indexes (never KEYS); without Redis, the in-process admission twin."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    cutoff_ms = now_ms - int(consumption_settings.RESERVATION_GRACE_SECONDS * 1000)
    report = ReconcileReport()
    client = get_redis()
    if client is None:
        _reconcile_local(now_ms, cutoff_ms, report)
    else:
        _reconcile_redis(client, cutoff_ms, report)
    if report.due:
        logger.info("reservations_reconciled", **vars(report))
    return report


def prune_usage_records(*, now: datetime | None = None, batch_size: int = PRUNE_BATCH) -> int:
    """Delete raw usage records older than `RETENTION_DAYS` (rollups are kept), in batches; returns how many.

    This is the only deletion path of the append-only ledger: `UsageRecord.delete()` refuses by design, so the
    rows go through `QuerySet._raw_delete` (no signals, no per-row hooks), one short transaction per batch."""
    cutoff = (now or timezone.now()) - timedelta(days=consumption_settings.RETENTION_DAYS)
    total = 0
    while True:
        ids = list(
            UsageRecord.objects.filter(started_at__lt=cutoff).order_by().values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            break
        with transaction.atomic():
            total += UsageRecord.objects.filter(pk__in=ids)._raw_delete(UsageRecord.objects.db)
        if len(ids) < batch_size:
            break
    if total:
        logger.info("usage_records_pruned", deleted=total, before=cutoff.isoformat())
    return total
