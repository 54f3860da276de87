"""Admission and settlement: one atomic Redis call admits a request against every limit and reserves its
estimated cost; settlement replaces the estimate with the actual usage (see protocol.py for the scripts' wire
format). Without Redis the in-process twin (local_admission.py) is used."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog
from redis.exceptions import RedisError

from apps.consumption.keys import KeyInfo, QuotaSnapshot
from apps.consumption.local_admission import local
from apps.consumption.protocol import (
    ADMIT_LUA,
    EXTEND_LUA,
    QUOTAS,
    REFUSED,
    SETTLE_LUA,
    STALE,
    AdmissionArgs,
    AdmissionResult,
    CallKeys,
    Metered,
    SettleArgs,
    extension_args,
)
from apps.tenancy import quotas
from apps.tenancy.conf import tenancy_settings
from apps.tenancy.money import from_units, to_units
from llm_infra_django.background import spawn
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import (
    AuthenticationError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from llm_infra_django.redis import (
    CLIENT_OPTIONS,
    cached_script,
    get_async_redis,
    get_redis,
    queue_script,
    script_result,
)

logger = structlog.get_logger(__name__)

SLOT_MARGIN_MS = 30_000


@dataclass
class Ticket:
    """An admitted request: what was reserved and under which keys, for settlement."""

    request_id: str
    tenant_id: str
    keys: CallKeys
    est_tokens: int
    est_cost_units: int
    rpm_limit: int | None
    rpm_remaining: int | None
    tpm_limit: int | None
    tpm_remaining: int | None
    tpm_reset_ms: int
    flags: list[str] = field(default_factory=list)
    settled: bool = False
    slot_ms: int = 0


def call_keys(key: KeyInfo, request_id: str, limits: dict[str, QuotaSnapshot], now: datetime) -> CallKeys:
    """The Redis keys of this key's call admitted at `now`."""
    return CallKeys.of(
        tenant_id=key.tenant_id,
        key_id=key.id,
        request_id=request_id,
        timezone=key.tenant_timezone,
        periods={name: snapshot.period for name, snapshot in limits.items()},
        now=now,
    )


def _limit(value: int | Decimal | None, money: bool = False) -> int:
    if value is None or value == -1:
        return -1
    return to_units(value) if money else int(value)


def _period_ttl(limits: dict[str, QuotaSnapshot]) -> int:
    return 32 * 86_400 if any(s.period == "month" for s in limits.values()) else 2 * 86_400


def admission_args(
    key: KeyInfo,
    request_id: str,
    limits: dict[str, QuotaSnapshot],
    *,
    est_tokens: int,
    est_cost_units: int,
    slot_ms: int,
    seeds: dict[str, int],
    orphan_record: str = "",
    valid_until_ms: int = -1,
    seeded_ids: tuple[str, ...] = (),
) -> AdmissionArgs:
    """The script's arguments for this call (limits from the key and its tenant's quotas; seeds as read so far)."""
    metered = {
        "budget_day": Metered(_limit(key.budget_day_usd, money=True), "block", seeds.get("budget_day", -1)),
        "budget_month": Metered(_limit(key.budget_month_usd, money=True), "block", seeds.get("budget_month", -1)),
    }
    for name in QUOTAS:
        snapshot = limits[name]
        metered[name] = Metered(snapshot.limit_units, snapshot.action, seeds.get(name, -1))
    credit = -1 if key.credit_usd is None else max(to_units(key.credit_usd), 0)
    metered["balance"] = Metered(credit, "block", seeds.get("balance", -1))
    return AdmissionArgs(
        request_id=request_id,
        key_id=key.id,
        rpm_limit=_limit(key.rpm_limit),
        tpm_limit=_limit(key.tpm_limit),
        max_parallel=_limit(key.max_parallel),
        est_tokens=est_tokens,
        est_cost=est_cost_units,
        slot_ms=slot_ms,
        metered=metered,
        throttle_rate=quotas_throttle_rate(),
        quota_ttl_s=_period_ttl(limits),
        orphan_record=orphan_record,
        valid_until_ms=valid_until_ms,
        seeded_ids=seeded_ids,
    )


def quotas_throttle_rate() -> float:
    from llm_infra_django.ratelimit.rates import parse_rate

    rate = parse_rate(tenancy_settings.THROTTLE_RATE)
    return rate.limit / rate.period


# --- Denials -----------------------------------------------------------------------------------------------


RATE_LABELS = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "parallel": "parallel requests",
    "throttle": "throttled quota",
}


def _deny(result: AdmissionResult) -> Exception:
    reason = result.reason
    if reason == "revoked":
        return AuthenticationError("This API key has been revoked.", code="invalid_api_key")
    if reason == "suspended":
        return AuthenticationError("The tenant of this API key is suspended.", code="tenant_suspended")
    if reason in RATE_LABELS:
        return RateLimitError(
            f"Rate limit reached for {RATE_LABELS[reason]}.",
            retry_after=max(result.retry_ms, 1) / 1000,
            code=f"rate_limit_{reason}",
        )
    if reason == "balance":
        error = QuotaExceededError(
            "Insufficient balance: this call could cost more than your tenant's prepaid credit has left.",
            quota=reason,
            limit=from_units(result.limit),
            used=from_units(result.used),
        )
        error.code = "insufficient_balance"
        return error
    money = reason in ("budget_day", "budget_month", "spend_usd")
    return QuotaExceededError(
        f"{'Budget' if reason.startswith('budget') else 'Quota'} '{reason}' exhausted.",
        quota=reason,
        limit=from_units(result.limit) if money else Decimal(result.limit),
        used=from_units(result.used) if money else Decimal(result.used),
    )


# --- Seeds: counters rebuilt from the database ----------------------------------------------------------------


def read_seeds(
    key: KeyInfo, limits: dict[str, QuotaSnapshot], names: Iterable[str], now: datetime, keys: CallKeys | None = None
) -> tuple[dict[str, int], set[str]]:
    """Durable usage for counters Redis does not hold (first use in a period, or after a Redis loss), read in one
    database snapshot, and the request ids among the counters' pending charges (see settle.lua) that this snapshot
    already holds: admission adds the other pending charges to the seeds."""
    with _one_snapshot():
        seeds = _durable_usage(key, limits, list(names), now)
        return seeds, _already_recorded(keys, seeds) if keys is not None else set()


@contextmanager
def _one_snapshot() -> Iterator[None]:
    """A transaction whose reads all see one snapshot (REPEATABLE READ on PostgreSQL; SQLite's are already)."""
    from django.db import connection, transaction

    fresh = not connection.in_atomic_block
    with transaction.atomic():
        if fresh and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def _durable_usage(key: KeyInfo, limits: dict[str, QuotaSnapshot], names: list[str], now: datetime) -> dict[str, int]:
    from apps.consumption.selectors import key_spend_units, tenant_billed_units
    from apps.tenancy.models import Tenant

    seeds: dict[str, int] = {}
    tenant = None
    for name in names:
        if name == "balance":
            seeds[name] = tenant_billed_units(key.tenant_id)
        elif name == "budget_day":
            seeds[name] = key_spend_units(key.id, day=now.date())
        elif name == "budget_month":
            seeds[name] = key_spend_units(key.id, month=(now.year, now.month))
        else:
            tenant = tenant or Tenant.objects.get(pk=key.tenant_id)
            start, _ = quotas.period_bounds(limits[name].period, key.tenant_timezone, now)
            seeds[name] = quotas.stored_usage(tenant, name, start)
    return seeds


def _already_recorded(keys: CallKeys, seeds: dict[str, int]) -> set[str]:
    """Read after the snapshot was taken: the pending charges of the seeded counters whose record it holds."""
    from apps.consumption.models import UsageRecord

    client = get_redis()
    if client is None or not seeds:
        return set()
    prefixes = tuple(f"{keys.counter(name)}|" for name in seeds)
    request_ids = {
        field.partition("|")[2] for field in map(_text, client.hkeys(keys.pending)) if field.startswith(prefixes)
    }
    if not request_ids:
        return set()
    return set(UsageRecord.objects.filter(request_id__in=request_ids).values_list("request_id", flat=True))


# --- Admission ---------------------------------------------------------------------------------------------------


def _valid_until_ms() -> int:
    """Redis applies a call only until the moment this process stops waiting for it (a call that reached a frozen
    Redis and ran once it woke up would otherwise hold a reservation, or charge, that nobody serves)."""
    return int(time.time() * 1000 + float(CLIENT_OPTIONS["socket_timeout"]) * 1000)


async def admit(
    *,
    key: KeyInfo,
    request_id: str,
    limits: dict[str, QuotaSnapshot],
    est_tokens: int,
    est_cost: Decimal,
    timeout_s: float,
    orphan_record: str = "",
) -> Ticket:
    """Admit the request or raise the error naming the limit it hit. One Redis round trip in the common case.

    `orphan_record` (an encoded ledger entry) is kept with the reservation: should the process serving the request
    die, the reconciler writes it to the ledger when the reservation expires (see reconcile.py)."""
    now = datetime.now(UTC)
    keys = call_keys(key, request_id, limits, now)
    slot_ms = int(timeout_s * 1000) + SLOT_MARGIN_MS
    est_units = to_units(est_cost)
    client = get_async_redis()
    seeds: dict[str, int] = {}
    seeded_ids: set[str] = set()
    # A refusal for lateness that does reach us means the clocks disagree, not that we gave up: ask again without it.
    valid_until_ms = _valid_until_ms()
    for _attempt in range(4):
        args = admission_args(
            key,
            request_id,
            limits,
            est_tokens=est_tokens,
            est_cost_units=est_units,
            slot_ms=slot_ms,
            seeds=seeds,
            orphan_record=orphan_record,
            valid_until_ms=valid_until_ms,
            seeded_ids=tuple(sorted(seeded_ids)),
        )
        if client is None:
            result = local.admit(keys, args)
        else:
            try:
                raw = await cached_script(client, ADMIT_LUA)(keys=keys.for_admission(), args=args.to_redis())
            except (RedisError, OSError) as exc:
                logger.error("admission_unavailable", error=type(exc).__name__)
                raise ServiceUnavailableError("Admission is unavailable; try again shortly.", retry_after=1) from exc
            result = AdmissionResult.from_redis(raw)
        if result.status == 1:
            return Ticket(
                request_id=request_id,
                tenant_id=key.tenant_id,
                keys=keys,
                est_tokens=est_tokens,
                est_cost_units=est_units,
                rpm_limit=key.rpm_limit,
                rpm_remaining=result.rpm_remaining if key.rpm_limit is not None else None,
                tpm_limit=key.tpm_limit,
                tpm_remaining=result.tpm_remaining if key.tpm_limit is not None else None,
                tpm_reset_ms=result.tpm_reset_ms,
                flags=list(result.flags),
                slot_ms=slot_ms,
            )
        if result.status == -2:
            read, recorded = await database_sync_to_async(read_seeds)(key, limits, result.missing, now, keys)
            seeds.update(read)
            seeded_ids |= recorded
            continue
        if result.status == -3:
            logger.warning("admission_clock_skew", request_id=request_id)
            valid_until_ms = -1
            continue
        if result.status == -4:
            logger.error("admission_arguments_refused", request_id=request_id, detail=result.reason)
            raise ValidationError(
                "This request's estimate is out of the range one call may reserve.",
                fields={"max_tokens": ["Too large for one call."]},
            )
        raise _deny(result)
    raise ServiceUnavailableError("Admission could not seed its counters.", retry_after=1)


# --- Settlement ----------------------------------------------------------------------------------------------


async def settle(
    ticket: Ticket,
    *,
    tokens: int,
    cost: Decimal,
    counted: bool = True,
    record: tuple[str, dict[str, bytes], str] | None = None,
    charge_missing: bool = False,
) -> tuple[str, str] | None:
    """Replace the reservation by the actual usage and free the slot (idempotent; with `charge_missing`, a
    reservation Redis no longer holds is charged the whole usage instead, see settle.lua). With `record` (a stream
    key, the fields, and the key of the stream's epoch token), the usage record is appended to the ledger stream in
    the same round trip; returns its entry id and the epoch it was appended in if it was (None otherwise).
    """
    if ticket.settled:
        return None
    ticket.settled = True
    usage = SettleArgs(ticket.request_id, int(tokens), to_units(cost), counted, charge_missing)
    client = get_async_redis()
    if client is None:
        local.settle(ticket.keys, usage)
        return None
    keys = ticket.keys.for_settlement()
    args = replace(usage, valid_until_ms=_valid_until_ms())
    try:
        if record is None:
            if _settled(await cached_script(client, SETTLE_LUA)(keys=keys, args=args.to_redis()), args) == STALE:
                await _settle_despite_skew(client, keys, args)
            return None
        stream, fields, epoch_key = record
        argv = args.to_redis()
        # As a context, the pipeline gives its connection back even when the request is cancelled meanwhile.
        async with client.pipeline(transaction=False) as pipe:
            queue_script(pipe, client, SETTLE_LUA, keys, argv)
            pipe.xadd(stream, fields)  # type: ignore[arg-type]  # redis-py asks an invariant dict for what it only reads
            # The epoch names the Redis data set the record went into (made anew after a loss, see ledger_stream.py).
            pipe.set(epoch_key, os.urandom(16).hex(), nx=True)
            pipe.get(epoch_key)
            settled, message_id, _, epoch = await pipe.execute(raise_on_error=False)
        for reply in (message_id, epoch):
            if isinstance(reply, Exception):
                raise reply
        settled = await script_result(settled, client, SETTLE_LUA, keys, argv)
        if _settled(settled, args) == STALE:
            await _settle_despite_skew(client, keys, args)
        return _text(message_id), _text(epoch)
    except (RedisError, OSError) as exc:
        # The caller writes the record to the database itself. The reservation may stay in Redis: settle it (without
        # the record, and without charging a missing one) once Redis answers, or the reconciler will, from the
        # record, once its deadline passes. Settling twice changes nothing.
        logger.error("settle_failed", request_id=ticket.request_id, error=type(exc).__name__)
        _settle_later(keys, replace(usage, charge_missing=False), ticket.slot_ms)
        return None


def _settled(answer: Any, args: SettleArgs) -> int:
    """settle.lua's answer, logged when it refused its arguments (a bug: callers bound what they settle)."""
    result = int(answer)
    if result == REFUSED:
        logger.error("settle_arguments_refused", request_id=args.request_id)
    return result


def settle_sync(keys: CallKeys, usage: SettleArgs) -> int:
    """Synchronous settlement for the reconciler and the ledger's outbox: 1 when a reservation was settled, 2 when a
    missing one was charged (`charge_missing`), 0 otherwise."""
    client = get_redis()
    if client is None:
        result = local.settle(keys, usage)
    else:
        result = int(cached_script(client, SETTLE_LUA)(keys=keys.for_settlement(), args=usage.to_redis()))
    return 0 if _settled(result, usage) == REFUSED else result


async def _settle_despite_skew(client: Any, keys: list[str], args: SettleArgs) -> None:
    """A settlement Redis found late although we were still waiting: the clocks disagree. Apply it without limit."""
    logger.warning("settle_clock_skew", request_id=args.request_id)
    await cached_script(client, SETTLE_LUA)(keys=keys, args=replace(args, valid_until_ms=-1).to_redis())


LATE_SETTLE_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)


def _settle_later(keys: list[str], args: SettleArgs, within_ms: int) -> None:
    """Retry a failed settlement in the background until Redis answers (at most for about `within_ms`)."""

    async def retry() -> None:
        started = time.monotonic()
        for delay in LATE_SETTLE_DELAYS:
            await asyncio.sleep(delay)
            client = get_async_redis()
            if client is None:
                return
            try:
                await cached_script(client, SETTLE_LUA)(keys=keys, args=args.to_redis())
                return
            except (RedisError, OSError):
                if (time.monotonic() - started) * 1000 > within_ms:
                    return

    spawn(retry())


async def extend(ticket: Ticket) -> None:
    """Keep a long request's reservation (and parallel slot) alive: its deadline moves one slot lifetime ahead, so
    that only the reservations of requests nobody serves any more expire and are reconciled."""
    if ticket.settled or not ticket.slot_ms:
        return
    client = get_async_redis()
    if client is None:
        local.extend(ticket.keys, ticket.request_id, ticket.slot_ms)
        return
    try:
        await cached_script(client, EXTEND_LUA)(
            keys=ticket.keys.for_extension(), args=extension_args(ticket.request_id, ticket.slot_ms)
        )
    except (RedisError, OSError) as exc:
        logger.warning("reservation_extend_failed", request_id=ticket.request_id, error=type(exc).__name__)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
