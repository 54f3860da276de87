"""The usage ledger writer: records are inserted in batches (one multi-row INSERT per flush, idempotent on
`request_id`), daily rollups and the tenants' durable quota counters are updated in the same transaction, and the
caller awaits its record's commit before acknowledging the response."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import structlog
from django.db import InterfaceError, OperationalError, connection, transaction

from apps.consumption.conf import consumption_settings
from apps.consumption.models import (
    LATENCY_BUCKETS_MS,
    ApiKey,
    UsageRecord,
    UsageRollup,
    is_counted,
    time_ordered_uuid,
)
from llm_infra_django.background import spawn
from llm_infra_django.redis import get_redis

logger = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass
class Entry:
    """One usage record to write (fields of `UsageRecord`)."""

    request_id: str
    tenant_id: str
    api_key_id: str
    publisher_id: str
    service_version_id: str
    model_id: str
    endpoint: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    price_snapshot: dict[str, Any]
    latency_ms: float
    status_code: int
    started_at: datetime
    finished_at: datetime
    tenant_timezone: str = "UTC"
    ttft_ms: float | None = None
    error_code: str = ""
    estimated: bool = False
    stream: bool = False
    quota_periods: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    reported_prompt_tokens: int | None = None
    reported_completion_tokens: int | None = None
    usage_disputed: bool = False
    provider: str = ""  # publisher/service@version
    attempt_of: str = ""  # a failed attempt's call
    attempts: int = 0  # failed attempts before the serving one


COLUMNS = (
    "id",
    "request_id",
    "tenant_id",
    "api_key_id",
    "publisher_id",
    "service_version_id",
    "model_id",
    "endpoint",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "price_snapshot",
    "latency_ms",
    "ttft_ms",
    "status_code",
    "error_code",
    "estimated",
    "stream",
    "started_at",
    "finished_at",
    "reported_prompt_tokens",
    "reported_completion_tokens",
    "usage_disputed",
    "provider",
    "attempt_of",
    "attempts",
)


def _uuid_param(value: str) -> str:
    """UUIDs as the database stores them (hex without dashes on SQLite, native on PostgreSQL)."""
    return value if connection.vendor == "postgresql" else value.replace("-", "")


def _row(entry: Entry) -> list[Any]:
    ops = connection.ops
    return [
        _uuid_param(str(time_ordered_uuid())),
        entry.request_id,
        _uuid_param(entry.tenant_id),
        _uuid_param(entry.api_key_id),
        _uuid_param(entry.publisher_id),
        _uuid_param(entry.service_version_id),
        entry.model_id,
        entry.endpoint,
        entry.prompt_tokens,
        entry.completion_tokens,
        ops.adapt_decimalfield_value(entry.cost, 20, 10),
        json.dumps(entry.price_snapshot),
        entry.latency_ms,
        entry.ttft_ms,
        entry.status_code,
        entry.error_code,
        entry.estimated,
        entry.stream,
        ops.adapt_datetimefield_value(entry.started_at),
        ops.adapt_datetimefield_value(entry.finished_at),
        entry.reported_prompt_tokens,
        entry.reported_completion_tokens,
        entry.usage_disputed,
        entry.provider,
        entry.attempt_of,
        entry.attempts,
    ]


# The PostgreSQL array type of each column, for one INSERT … SELECT FROM unnest(…) per batch.
ARRAY_TYPES = {
    "id": "uuid",
    "tenant_id": "uuid",
    "api_key_id": "uuid",
    "publisher_id": "uuid",
    "service_version_id": "uuid",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "cost": "numeric",
    "price_snapshot": "jsonb",
    "latency_ms": "float8",
    "ttft_ms": "float8",
    "status_code": "smallint",
    "estimated": "boolean",
    "stream": "boolean",
    "started_at": "timestamptz",
    "finished_at": "timestamptz",
    "reported_prompt_tokens": "bigint",
    "reported_completion_tokens": "bigint",
    "usage_disputed": "boolean",
    "attempts": "smallint",
}


def _insert(entries: list[Entry]) -> tuple[str, list[Any]]:
    """The INSERT of a batch (records already there skipped, the new ones' request ids returned). On PostgreSQL one
    array per column (`unnest`): as many parameters for 500 records as for one, where a VALUES list takes 23 per
    record and most of a batch's cost goes into building its query."""
    records = UsageRecord._meta.db_table
    rows = [_row(entry) for entry in entries]
    # Table, column and type names are ours; every value is a parameter.
    head = f"INSERT INTO {records} ({', '.join(COLUMNS)}) "
    tail = " ON CONFLICT (request_id) DO NOTHING RETURNING request_id"
    if connection.vendor == "postgresql":
        arrays = ", ".join(f"%s::{ARRAY_TYPES.get(name, 'text')}[]" for name in COLUMNS)
        columns = [list(column) for column in zip(*rows, strict=True)]
        return f"{head}SELECT * FROM unnest({arrays}){tail}", columns  # noqa: S608
    placeholders = ", ".join(["(" + ", ".join(["%s"] * len(COLUMNS)) + ")"] * len(entries))
    return f"{head}VALUES {placeholders}{tail}", [value for row in rows for value in row]


def latency_bucket(latency_ms: float) -> int:
    return bisect.bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def write_entries(entries: list[Entry]) -> set[str]:
    """Insert records (skipping request ids already written), roll them up, count quota usage. One transaction.

    Returns the request ids that were new.
    """
    if not entries:
        return set()
    sql, params = _insert(entries)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            inserted = {row[0] for row in cursor.fetchall()}
        fresh = [entry for entry in entries if entry.request_id in inserted]
        # A failed attempt at one offer of a routed call is the provider's record (its SLA), not a consumer request.
        _roll_up([entry for entry in fresh if not entry.attempt_of])
        _count_quota_usage(fresh)
        if disputed := [entry for entry in fresh if entry.usage_disputed]:
            transaction.on_commit(lambda: _announce_disputes(disputed))
    return inserted


def _announce_disputes(entries: list[Entry]) -> None:
    """The alert event of each disputed record (logged, and sent as `usage_disputed`); a receiver's failure is
    logged, never raised into the ledger writer."""
    from apps.consumption.signals import usage_disputed

    for entry in entries:
        details = {
            "request_id": entry.request_id,
            "tenant_id": entry.tenant_id,
            "publisher_id": entry.publisher_id,
            "service_version_id": entry.service_version_id,
            "model_id": entry.model_id,
            "prompt_tokens": entry.prompt_tokens,
            "completion_tokens": entry.completion_tokens,
            "reported_prompt_tokens": entry.reported_prompt_tokens,
            "reported_completion_tokens": entry.reported_completion_tokens,
        }
        logger.warning("usage_disputed", **details)
        for receiver, result in usage_disputed.send_robust(sender=UsageRecord, **details):
            if isinstance(result, Exception):
                logger.error("usage_disputed_receiver_failed", receiver=repr(receiver), error=type(result).__name__)


def _roll_up(entries: list[Entry]) -> None:
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        day = entry.started_at.astimezone(UTC).date()
        key = (day, entry.tenant_id, entry.api_key_id, entry.service_version_id)
        group = groups.setdefault(
            key,
            {
                "publisher_id": entry.publisher_id,
                "model_id": entry.model_id.split("@", 1)[0],
                "requests": 0,
                "errors": 0,
                "disputed": 0,
                "prompt": 0,
                "completion": 0,
                "cost": Decimal(0),
                "latency": 0.0,
                "buckets": [0] * (len(LATENCY_BUCKETS_MS) + 1),
            },
        )
        group["requests"] += 1
        group["errors"] += 1 if entry.status_code >= 400 else 0
        group["disputed"] += 1 if entry.usage_disputed else 0
        group["prompt"] += entry.prompt_tokens
        group["completion"] += entry.completion_tokens
        group["cost"] += entry.cost
        group["latency"] += entry.latency_ms
        group["buckets"][latency_bucket(entry.latency_ms)] += 1
    # One order for every writer: two drainers locking the same rollup rows in different orders would deadlock.
    for (day, tenant_id, key_id, version_id), group in sorted(
        groups.items(), key=lambda item: tuple(map(str, item[0]))
    ):
        _upsert_rollup(day, tenant_id, key_id, version_id, group)


def rebuild_rollups(first_day: date, last_day: date) -> int:
    """Recompute the daily rollups of the UTC days `first_day`..`last_day` from the raw usage records (for days
    whose rollups were lost or written by an older release); returns the number of rollup rows written. Run it for
    closed days: records of a day still being written may land in the old rows while they are replaced."""
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    end = datetime.combine(last_day + timedelta(days=1), time.min, tzinfo=UTC)
    names = [name for name in COLUMNS if name in Entry.__dataclass_fields__]
    with transaction.atomic():
        UsageRollup.objects.filter(day__gte=first_day, day__lte=last_day).delete()
        batch: list[Entry] = []
        records = UsageRecord.objects.filter(started_at__gte=start, started_at__lt=end).order_by("started_at")
        for record in records.iterator(chunk_size=2000):
            batch.append(Entry(**{name: getattr(record, name) for name in names}))
            if len(batch) >= 2000:
                _roll_up(batch)
                batch = []
        _roll_up(batch)
        return UsageRollup.objects.filter(day__gte=first_day, day__lte=last_day).count()


def _upsert_rollup(day: Any, tenant_id: str, key_id: str, version_id: str, group: dict[str, Any]) -> None:
    """Increment the day's rollup row (rows are locked by the update, so concurrent writers add up)."""
    filters = {"day": day, "tenant_id": tenant_id, "api_key_id": key_id, "service_version_id": version_id}
    for _attempt in range(2):
        row = UsageRollup.objects.select_for_update().filter(**filters).first()
        if row is not None:
            row.requests += group["requests"]
            row.errors += group["errors"]
            row.disputed += group["disputed"]
            row.prompt_tokens += group["prompt"]
            row.completion_tokens += group["completion"]
            row.cost += group["cost"]
            row.latency_sum_ms += group["latency"]
            buckets = list(row.latency_buckets) + [0] * (len(group["buckets"]) - len(row.latency_buckets))
            row.latency_buckets = [a + b for a, b in zip(buckets, group["buckets"], strict=True)]
            row.save(
                update_fields=[
                    "requests",
                    "errors",
                    "disputed",
                    "prompt_tokens",
                    "completion_tokens",
                    "cost",
                    "latency_sum_ms",
                    "latency_buckets",
                ]
            )
            return
        try:
            with transaction.atomic():
                UsageRollup.objects.create(
                    publisher_id=group["publisher_id"],
                    model_id=group["model_id"],
                    requests=group["requests"],
                    errors=group["errors"],
                    disputed=group["disputed"],
                    prompt_tokens=group["prompt"],
                    completion_tokens=group["completion"],
                    cost=group["cost"],
                    latency_sum_ms=group["latency"],
                    latency_buckets=group["buckets"],
                    **filters,
                )
            return
        except Exception as exc:  # a concurrent writer created the row first: update it instead
            from django.db import IntegrityError

            if not isinstance(exc, IntegrityError):
                raise
    raise RuntimeError("could not upsert the usage rollup")


def _count_quota_usage(entries: list[Entry]) -> None:
    """Add what the requests actually used to the tenants' durable quota counters (the Redis counters' source)."""
    from apps.tenancy import quotas
    from apps.tenancy.models import Tenant

    totals: dict[tuple[str, str, datetime, datetime], int] = defaultdict(int)
    for entry in entries:
        amounts = {
            "api_requests": 1,
            "tokens": entry.prompt_tokens + entry.completion_tokens,
            "spend_usd": quotas.to_units("spend_usd", entry.cost),
        }
        for quota_type, (start, end) in entry.quota_periods.items():
            if amounts[quota_type]:
                totals[(entry.tenant_id, quota_type, start, end)] += amounts[quota_type]
    tenants = {str(t.pk): t for t in Tenant.objects.filter(pk__in={key[0] for key in totals})}
    for (tenant_id, quota_type, start, end), units in sorted(totals.items(), key=lambda item: str(item[0])):
        # Sorted: one lock order for every writer, as for the rollups. A tenant deleted since counts nothing.
        if tenant_id in tenants:
            quotas.persist_usage(tenants[tenant_id], quota_type, start, end, units)


def rebuild_quota_usage(tenants: Iterable[Any], *, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Set each tenant's durable counters of the current periods (requests, tokens, spend in 10⁻¹⁰ USD) to what its
    counted usage records sum to, and drop the Redis counters of those periods and of its keys' budgets, so that
    admission seeds them again from the database: counters equal the ledger exactly (e.g. after an upgrade from
    micro-dollar counters). A call in flight meanwhile is counted once less until its period ends: run it quietly.
    Returns {tenant slug: {quota type: units}}."""
    from apps.consumption.protocol import budget_counter_keys
    from apps.tenancy import quotas
    from apps.tenancy.models import QuotaUsage

    now = now or datetime.now(UTC)
    rebuilt: dict[str, dict[str, int]] = {}
    stale: list[str] = []
    for tenant in tenants:
        rebuilt[tenant.slug] = {}
        for quota_type in quotas.METERED:
            start, end = quotas.period_bounds(quotas.get_limit(tenant, quota_type).period, tenant.timezone, now)
            records = UsageRecord.objects.filter(tenant=tenant, started_at__gte=start, started_at__lt=end)
            counted = [
                row
                for row in records.values_list(
                    "status_code", "error_code", "prompt_tokens", "completion_tokens", "cost"
                )
                if is_counted(row[0], row[1])
            ]
            units = {
                "api_requests": len(counted),
                "tokens": sum(prompt + completion for _, _, prompt, completion, _ in counted),
                "spend_usd": quotas.to_units("spend_usd", sum((cost for *_, cost in counted), Decimal(0))),
            }[quota_type]
            QuotaUsage.objects.update_or_create(
                tenant=tenant, quota_type=quota_type, period_start=start, defaults={"period_end": end, "used": units}
            )
            rebuilt[tenant.slug][quota_type] = units
            stale.append(quotas.counter_key(tenant.pk, quota_type, start))
        for key_id in ApiKey.objects.filter(tenant=tenant).values_list("pk", flat=True):
            stale.extend(budget_counter_keys(str(tenant.pk), str(key_id), now))
    client = get_redis()
    if client is not None and stale:
        client.delete(*stale)
    return rebuilt


# One thread owns the ledger's database connection: writes are serialized (each flush is one batch anyway) and
# never wait for a request's thread (a request's sync thread may itself be waiting for this very write).
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")


async def in_ledger_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a synchronous database function on the ledger's thread, which owns the ledger's connection."""
    return await asyncio.get_running_loop().run_in_executor(_executor, function, *args)


def write_with_reconnect(entries: list[Entry]) -> set[str]:
    """`write_entries`, retried once on a fresh connection when the old one broke (e.g. the database restarted)."""
    try:
        return write_entries(entries)
    except (OperationalError, InterfaceError):
        connection.close()
        return write_entries(entries)


class LedgerWriter:
    """Per event loop: collects entries and flushes them in batches from a background task (group commit)."""

    def __init__(self) -> None:
        self._pending: list[tuple[Entry, asyncio.Future[None]]] = []
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def write(self, entry: Entry) -> None:
        """Queue the entry and return once it is committed (raises if the database refused the batch)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((entry, future))
        if self._task is None or self._task.done():
            self._wakeup = asyncio.Event()
            # A fresh context: the flusher outlives the request that started it, and must not use that request's
            # thread executor (asgiref ties `sync_to_async` to the request's context).
            self._task = spawn(self._run())
        if len(self._pending) >= consumption_settings.LEDGER_BATCH_SIZE and self._wakeup is not None:
            self._wakeup.set()
        await asyncio.shield(future)

    async def _run(self) -> None:
        while self._pending:
            assert self._wakeup is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), consumption_settings.LEDGER_FLUSH_MS / 1000)
            self._wakeup.clear()
            batch, self._pending = (
                self._pending[: consumption_settings.LEDGER_BATCH_SIZE * 5],
                self._pending[consumption_settings.LEDGER_BATCH_SIZE * 5 :],
            )
            try:
                await in_ledger_thread(write_with_reconnect, [entry for entry, _ in batch])
            except Exception as exc:
                logger.error("ledger_write_failed", records=len(batch), error=type(exc).__name__)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)


_writers: dict[int, LedgerWriter] = {}


def writer() -> LedgerWriter:
    """The ledger writer of the running event loop."""
    loop = asyncio.get_running_loop()
    current = _writers.get(id(loop))
    if current is None:
        current = _writers[id(loop)] = LedgerWriter()
    return current
