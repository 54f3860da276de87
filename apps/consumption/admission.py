"""Admission and settlement: one atomic Redis call admits a request against every limit and reserves its
estimated cost; settlement replaces the estimate with the actual usage. Without Redis an in-process twin with the
same semantics is used (limits are then per process, which suits a single development server only)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import structlog
from redis.exceptions import RedisError

from apps.consumption.keys import KeyInfo
from apps.tenancy import quotas
from apps.tenancy.conf import tenancy_settings
from apps.tenancy.money import from_units, to_units
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import (
    AuthenticationError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    ValidationError,
)
from llm_infra_django.redis import CLIENT_OPTIONS, cached_script, get_async_redis, get_redis

logger = structlog.get_logger(__name__)

_INTEGERS_LUA = Path(__file__).with_name("integers.lua").read_text()
ADMIT_LUA = _INTEGERS_LUA + Path(__file__).with_name("admission.lua").read_text()
SETTLE_LUA = _INTEGERS_LUA + Path(__file__).with_name("settle.lua").read_text()
# Push a live reservation's deadline (and its parallel slot's) one slot lifetime ahead of now.
# KEYS: reservation hash, reservation index, parallel slots. ARGV: request id, slot lifetime ms.
EXTEND_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('HSET', KEYS[1], 'deadline', deadline)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) + 86400000)
redis.call('ZADD', KEYS[2], 'XX', deadline, ARGV[1])
if redis.call('ZADD', KEYS[3], 'XX', 'CH', deadline, ARGV[1]) == 1 then
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]) + 60000)
end
return 1
"""
# The largest amount (tokens, or 10⁻¹⁰ USD: about $112 000) one call may reserve, and the largest value a counter may
# hold (about $100 M a period): the scripts add and compare them exactly (see integers.lua).
MAX_AMOUNT = 2**50
MAX_COUNTER = 10**18 - 1
TPM_WINDOW_MS = 60_000
SLOT_MARGIN_MS = 30_000


@dataclass(frozen=True)
class QuotaSnapshot:
    """The tenant's metered limits as the proxy uses them (from the quota engine, cached with the key)."""

    limit_units: int
    action: str
    period: str


@dataclass
class Ticket:
    """An admitted request: what was reserved and under which keys, for settlement."""

    request_id: str
    tenant_id: str
    keys: list[str]
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


def _tag(tenant_id: str) -> str:
    return f"{{t:{tenant_id}}}"


def revoked_key(tenant_id: str, key_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:revoked:{key_id}"


def suspended_key(tenant_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:suspended"


def reservation_index_key(tenant_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:resv-idx"


def budget_counter_keys(tenant_id: str, key_id: str, now: datetime) -> list[str]:
    """A key's budget counters of the UTC day and month holding `now`. Money counters name their unit (10⁻¹⁰ USD):
    counters of an older unit are never read as this one."""
    tag = _tag(tenant_id)
    return [f"ck:{tag}:k:{key_id}:bd:e10:{now:%Y%m%d}", f"ck:{tag}:k:{key_id}:bm:e10:{now:%Y%m}"]


def counter_keys(key: KeyInfo, request_id: str, limits: dict[str, QuotaSnapshot], now: datetime) -> list[str]:
    """The 13 keys of the admission script for this request (settlement reuses them)."""
    tag, k = _tag(key.tenant_id), key.id
    minute = int(now.timestamp() * 1000) // TPM_WINDOW_MS
    quota_keys = []
    for quota_type in ("api_requests", "tokens", "spend_usd"):
        snapshot = limits[quota_type]
        start, _ = quotas.period_bounds(snapshot.period, key.tenant_timezone, now)
        quota_keys.append(quotas.counter_key(key.tenant_id, quota_type, start))
    return [
        revoked_key(key.tenant_id, k),
        suspended_key(key.tenant_id),
        f"ck:{tag}:k:{k}:rpm",
        f"ck:{tag}:k:{k}:tpm:{minute}",
        f"ck:{tag}:k:{k}:par",
        *budget_counter_keys(key.tenant_id, k, now),
        *quota_keys,
        f"ck:{tag}:resv:{request_id}",
        reservation_index_key(key.tenant_id),
        f"ck:{tag}:qthrottle",
    ]


def _limit(value: int | Decimal | None, money: bool = False) -> int:
    """A limit as the script takes it: -1 for none; a limit beyond what a counter may hold is that ceiling (it can
    never be reached anyway)."""
    if value is None or value == -1:
        return -1
    return min(to_units(value) if money else int(value), MAX_COUNTER)


def _seed(seeds: dict[str, int], name: str) -> int:
    value = seeds.get(name, -1)
    return -1 if value < 0 else min(value, MAX_COUNTER)


def _period_ttl(limits: dict[str, QuotaSnapshot]) -> int:
    return 32 * 86_400 if any(s.period == "month" for s in limits.values()) else 2 * 86_400


def admission_args(
    key: KeyInfo,
    request_id: str,
    limits: dict[str, QuotaSnapshot],
    est_tokens: int,
    est_cost_units: int,
    slot_ms: int,
    seeds: dict[str, int],
    orphan_record: str = "",
    valid_until_ms: int = -1,
) -> list[Any]:
    def quota(name: str) -> list[Any]:
        snapshot = limits[name]
        return [_limit(snapshot.limit_units), snapshot.action, _seed(seeds, name)]

    rate = quotas_throttle_rate()
    return [
        request_id,
        _limit(key.rpm_limit),
        _limit(key.tpm_limit),
        est_tokens,
        _limit(key.max_parallel),
        slot_ms,
        _limit(key.budget_day_usd, money=True),
        _limit(key.budget_month_usd, money=True),
        est_cost_units,
        *quota("api_requests"),
        *quota("tokens"),
        *quota("spend_usd"),
        _seed(seeds, "budget_day"),
        _seed(seeds, "budget_month"),
        rate,
        _period_ttl(limits),
        TPM_WINDOW_MS,
        key.id,
        orphan_record,
        valid_until_ms,
        MAX_AMOUNT,
        MAX_COUNTER,
    ]


def quotas_throttle_rate() -> float:
    from llm_infra_django.ratelimit.rates import parse_rate

    rate = parse_rate(tenancy_settings.THROTTLE_RATE)
    return rate.limit / rate.period


# --- Denials -----------------------------------------------------------------------------------------------


def _deny(result: list[Any], key: KeyInfo, limits: dict[str, QuotaSnapshot]) -> Exception:
    reason = _text(result[1])
    if reason == "revoked":
        return AuthenticationError("This API key has been revoked.", code="invalid_api_key")
    if reason == "suspended":
        return AuthenticationError("The tenant of this API key is suspended.", code="tenant_suspended")
    retry_ms = int(result[2]) if len(result) > 2 else 1000
    if reason in ("rpm", "tpm", "parallel", "throttle"):
        labels = {
            "rpm": "requests per minute",
            "tpm": "tokens per minute",
            "parallel": "parallel requests",
            "throttle": "throttled quota",
        }
        return RateLimitError(
            f"Rate limit reached for {labels[reason]}.",
            retry_after=max(retry_ms, 1) / 1000,
            code=f"rate_limit_{reason}",
        )
    limit, used = int(result[3]), int(result[4])
    money = reason in ("budget_day", "budget_month", "spend_usd")
    return QuotaExceededError(
        f"{'Budget' if reason.startswith('budget') else 'Quota'} '{reason}' exhausted.",
        quota=reason,
        limit=from_units(limit) if money else Decimal(limit),
        used=from_units(used) if money else Decimal(used),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- Seeds: counters rebuilt from the database ----------------------------------------------------------------


def read_seeds(key: KeyInfo, limits: dict[str, QuotaSnapshot], names: list[str], now: datetime) -> dict[str, int]:
    """Durable usage for counters Redis does not hold (first use in a period, or after a Redis loss)."""
    from apps.consumption.selectors import key_spend_units
    from apps.tenancy.models import Tenant

    seeds: dict[str, int] = {}
    tenant = None
    for name in names:
        if name == "budget_day":
            seeds[name] = key_spend_units(key.id, day=now.date())
        elif name == "budget_month":
            seeds[name] = key_spend_units(key.id, month=(now.year, now.month))
        else:
            tenant = tenant or Tenant.objects.get(pk=key.tenant_id)
            start, _ = quotas.period_bounds(limits[name].period, key.tenant_timezone, now)
            seeds[name] = quotas.stored_usage(tenant, name, start)
    return seeds


# --- Redis backend ---------------------------------------------------------------------------------------------


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
    keys = counter_keys(key, request_id, limits, now)
    slot_ms = int(timeout_s * 1000) + SLOT_MARGIN_MS
    est_units = to_units(est_cost)
    client = get_async_redis()
    seeds: dict[str, int] = {}
    # Redis refuses to apply this admission after the moment this process stops waiting for it (a call that reached
    # a frozen Redis and ran once it woke up would hold a reservation nobody serves). A refusal that does reach us
    # means the clocks disagree, not that we gave up: then we ask again without the limit.
    valid_until_ms = int(time.time() * 1000 + float(CLIENT_OPTIONS["socket_timeout"]) * 1000)
    for _attempt in range(4):
        args = admission_args(
            key, request_id, limits, est_tokens, est_units, slot_ms, seeds, orphan_record, valid_until_ms
        )
        if client is None:
            result = local.admit(keys, args)
        else:
            try:
                result = await cached_script(client, ADMIT_LUA)(keys=keys, args=args)
            except (RedisError, OSError) as exc:
                logger.error("admission_unavailable", error=type(exc).__name__)
                raise ServiceUnavailableError("Admission is unavailable; try again shortly.", retry_after=1) from exc
        status = int(result[0])
        if status == -4:
            logger.error("admission_arguments_refused", request_id=request_id, detail=_text(result[1]))
            raise ValidationError(
                "This request's estimate is out of the range one call may reserve.",
                fields={"max_tokens": ["Too large for one call."]},
            )
        if status == -3:
            logger.warning("admission_clock_skew", request_id=request_id)
            valid_until_ms = -1
            continue
        if status == 1:
            return Ticket(
                request_id=request_id,
                tenant_id=key.tenant_id,
                keys=keys,
                est_tokens=est_tokens,
                est_cost_units=est_units,
                rpm_limit=key.rpm_limit,
                rpm_remaining=int(result[2]) if key.rpm_limit is not None else None,
                tpm_limit=key.tpm_limit,
                tpm_remaining=int(result[3]) if key.tpm_limit is not None else None,
                tpm_reset_ms=int(result[4]),
                flags=[f for f in _text(result[5]).split(",") if f],
                slot_ms=slot_ms,
            )
        if status == -2:
            names = [_text(name) for name in result[2:]]
            seeds.update(await database_sync_to_async(read_seeds)(key, limits, names, now))
            continue
        raise _deny(result, key, limits)
    raise ServiceUnavailableError("Admission could not seed its counters.", retry_after=1)


def settle_keys(ticket_keys: list[str]) -> list[str]:
    """Keys of the settle script, in its order, from the admission keys."""
    return [
        ticket_keys[10],
        ticket_keys[11],
        ticket_keys[4],
        ticket_keys[3],
        ticket_keys[5],
        ticket_keys[6],
        ticket_keys[7],
        ticket_keys[8],
        ticket_keys[9],
    ]


async def settle(
    ticket: Ticket,
    *,
    tokens: int,
    cost: Decimal,
    counted: bool = True,
    record: tuple[str, dict[str, str], str] | None = None,
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
    keys = settle_keys(ticket.keys)
    client = get_async_redis()
    if client is None:
        local.settle(keys, settle_args(ticket.request_id, int(tokens), to_units(cost), counted, charge_missing))
        return None
    # As for admission: applied only while this process still waits for the answer (see settle.lua).
    valid_until_ms = int(time.time() * 1000 + float(CLIENT_OPTIONS["socket_timeout"]) * 1000)
    args = settle_args(ticket.request_id, int(tokens), to_units(cost), counted, charge_missing, valid_until_ms)
    try:
        if record is None:
            if await cached_script(client, SETTLE_LUA)(keys=keys, args=args) == -3:
                await _settle_despite_skew(client, keys, args)
            return None
        stream, fields, epoch_key = record
        # As a context, the pipeline gives its connection back even when the request is cancelled meanwhile.
        async with client.pipeline(transaction=False) as pipe:
            await cached_script(client, SETTLE_LUA)(keys=keys, args=args, client=pipe)
            pipe.xadd(stream, fields)
            # The epoch names the Redis data set the record went into (made anew after a loss, see stream.py).
            pipe.set(epoch_key, uuid.uuid4().hex, nx=True)
            pipe.get(epoch_key)
            settled, message_id, _, epoch = await pipe.execute()
        if settled == -3:
            await _settle_despite_skew(client, keys, args)
        elif settled == -4:
            logger.error("settle_arguments_refused", request_id=ticket.request_id)
        return _text(message_id), _text(epoch)
    except (RedisError, OSError) as exc:
        # The caller writes the record to the database itself. The reservation may stay in Redis: settle it (without
        # the record, and without charging a missing one) once Redis answers, or the reconciler will, from the
        # record, once its deadline passes. Settling twice changes nothing.
        logger.error("settle_failed", request_id=ticket.request_id, error=type(exc).__name__)
        _settle_later(keys, settle_args(ticket.request_id, int(tokens), to_units(cost), counted, False), ticket.slot_ms)
        return None


def settle_args(
    request_id: str, tokens: int, cost_units: int, counted: bool, charge_missing: bool, valid_until_ms: int = -1
) -> list[Any]:
    """The settle script's arguments, in its order (see settle.lua)."""
    return [
        request_id,
        tokens,
        cost_units,
        1 if counted else 0,
        1 if charge_missing else 0,
        valid_until_ms,
        MAX_AMOUNT,
        MAX_COUNTER,
    ]


def settle_sync(
    keys: list[str], request_id: str, *, tokens: int, cost_units: int, counted: bool, charge_missing: bool = False
) -> int:
    """Synchronous settlement (keys as given by `settle_keys`) for the reconciler and the ledger's outbox; returns
    1 when a reservation was settled, 2 when a missing one was charged (`charge_missing`), 0 otherwise."""
    args = settle_args(request_id, tokens, cost_units, counted, charge_missing)
    client = get_redis()
    if client is None:
        result = local.settle(keys, args)
    else:
        result = int(cached_script(client, SETTLE_LUA)(keys=keys, args=args))
    if result == -4:
        logger.error("settle_arguments_refused", request_id=request_id)
        return 0
    return result


async def _settle_despite_skew(client: Any, keys: list[str], args: list[Any]) -> None:
    """A settlement Redis found late although we were still waiting: the clocks disagree. Apply it without limit."""
    logger.warning("settle_clock_skew", request_id=args[0])
    await cached_script(client, SETTLE_LUA)(keys=keys, args=[*args[:5], -1, *args[6:]])


_later: set[asyncio.Task[None]] = set()
LATE_SETTLE_DELAYS = (0.5, 1, 2, 4, 8, 15, 30)


def _settle_later(keys: list[str], args: list[Any], within_ms: int) -> None:
    """Retry a failed settlement in the background until Redis answers (at most for about `within_ms`)."""

    async def retry() -> None:
        started = time.monotonic()
        for delay in LATE_SETTLE_DELAYS:
            await asyncio.sleep(delay)
            client = get_async_redis()
            if client is None:
                return
            try:
                await cached_script(client, SETTLE_LUA)(keys=keys, args=args)
                return
            except (RedisError, OSError):
                if (time.monotonic() - started) * 1000 > within_ms:
                    return

    task = asyncio.get_running_loop().create_task(retry(), context=contextvars.Context())
    _later.add(task)
    task.add_done_callback(_later.discard)


async def extend(ticket: Ticket) -> None:
    """Keep a long request's reservation (and parallel slot) alive: its deadline moves one slot lifetime ahead, so
    that only the reservations of requests nobody serves any more expire and are reconciled."""
    if ticket.settled or not ticket.slot_ms:
        return
    keys = [ticket.keys[10], ticket.keys[11], ticket.keys[4]]
    client = get_async_redis()
    if client is None:
        local.extend(keys, ticket.request_id, ticket.slot_ms)
        return
    try:
        await cached_script(client, EXTEND_LUA)(keys=keys, args=[ticket.request_id, ticket.slot_ms])
    except (RedisError, OSError) as exc:
        logger.warning("reservation_extend_failed", request_id=ticket.request_id, error=type(exc).__name__)


def mark_revoked(tenant_id: str, key_id: str) -> None:
    """Make Redis refuse the key on every worker's next request (called inside the revoking transaction)."""
    client = get_redis()
    if client is None:
        local.flags.add(revoked_key(tenant_id, key_id))
        return
    client.set(revoked_key(tenant_id, key_id), "1", ex=400 * 86_400)


async def is_revoked(key: KeyInfo) -> bool:
    """Whether Redis (or this process) holds the key's revocation flag: checked by endpoints that skip admission."""
    name = revoked_key(key.tenant_id, key.id)
    client = get_async_redis()
    if client is None:
        return name in local.flags
    try:
        return bool(await client.exists(name))
    except (RedisError, OSError):
        return False


def set_tenant_suspended(tenant_id: str, suspended: bool) -> None:
    client = get_redis()
    name = suspended_key(tenant_id)
    if client is None:
        (local.flags.add if suspended else local.flags.discard)(name)
        return
    if suspended:
        client.set(name, "1")
    else:
        client.delete(name)


# --- In-process twin --------------------------------------------------------------------------------------------


class LocalAdmission:
    """The scripts' semantics on in-memory state, under one lock (single-process deployments and tests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, Any] = {}
        self.flags: set[str] = set()

    def clear(self) -> None:
        with self.lock:
            self.values.clear()
            self.flags.clear()

    def admit(self, keys: list[str], args: list[Any]) -> list[Any]:
        with self.lock:
            return self._admit(keys, args)

    def _admit(self, keys: list[str], a: list[Any]) -> list[Any]:
        now = int(time.time() * 1000)
        if keys[0] in self.flags:
            return [0, "revoked"]
        if keys[1] in self.flags:
            return [0, "suspended"]
        request_id, rpm_limit, tpm_limit, est_tokens, max_parallel, slot_ms = a[0], *map(int, a[1:6])
        est_cost = int(a[8])
        if not (0 <= est_tokens <= MAX_AMOUNT and 0 <= est_cost <= MAX_AMOUNT):
            return [-4, "amount"]
        metered = [
            (5, int(a[6]), "block", int(a[18]), est_cost, "budget_day"),
            (6, int(a[7]), "block", int(a[19]), est_cost, "budget_month"),
            (7, int(a[9]), a[10], int(a[11]), 1, "api_requests"),
            (8, int(a[12]), a[13], int(a[14]), est_tokens, "tokens"),
            (9, int(a[15]), a[16], int(a[17]), est_cost, "spend_usd"),
        ]
        current: dict[int, int] = {}
        missing = []
        for index, (slot, limit, _action, seed, _amount, name) in enumerate(metered):
            if limit >= 0:
                value = self.values.get(keys[slot])
                if isinstance(value, int) and 0 <= value <= MAX_COUNTER:
                    current[index] = value
                elif seed >= 0:
                    current[index] = seed
                else:
                    missing.append(name)
        if missing:
            return [-2, "seed", *missing]
        log: list[tuple[int, str]] = self.values.setdefault(keys[2], [])
        log[:] = [(ts, rid) for ts, rid in log if ts > now - 60_000]
        if rpm_limit >= 0 and len(log) >= rpm_limit:
            return [0, "rpm", max(log[0][0] + 60_000 - now, 1), rpm_limit]
        tpm_used = self.values.get(keys[3], 0)
        window = int(a[22])
        if tpm_limit >= 0 and tpm_used + est_tokens > tpm_limit:
            return [0, "tpm", window - now % window, tpm_limit]
        slots: dict[str, int] = self.values.setdefault(keys[4], {})
        for rid in [rid for rid, deadline in slots.items() if deadline <= now]:
            slots.pop(rid)
        if max_parallel >= 0 and len(slots) >= max_parallel:
            return [0, "parallel", 1000, max_parallel]
        throttled = False
        flags = []
        for index, (_slot, limit, action, _seed, amount, name) in enumerate(metered):
            if limit < 0:
                continue
            after = current[index] + amount
            if after > MAX_COUNTER:
                return [0, name, 0, limit, current[index]]
            if after > limit:
                if action == "block":
                    return [0, name, 0, limit, current[index]]
                if action == "throttle":
                    throttled = True
                elif current[index] <= limit:
                    flags.append(f"alert:{name}")
            if current[index] < 0.8 * limit <= after:
                flags.append(f"soft:{name}")
        if throttled:
            rate = float(a[20])
            tokens, ts = self.values.get(keys[12], (1.0, now))
            tokens = min(1.0, tokens + (now - ts) * rate / 1000)
            if tokens < 1:
                return [0, "throttle", int((1 - tokens) * 1000 / rate) + 1, 0]
            self.values[keys[12]] = (tokens - 1, now)
        if rpm_limit >= 0:
            log.append((now, request_id))
        if tpm_limit >= 0:
            self.values[keys[3]] = tpm_used + est_tokens
        if max_parallel >= 0:
            slots[request_id] = now + slot_ms
        charged = []
        for index, (slot, limit, _action, _seed, amount, name) in enumerate(metered):
            if limit >= 0:
                self.values[keys[slot]] = current[index] + amount
                charged.append(name)
        self.values[keys[10]] = {
            "tokens": est_tokens,
            "cost": est_cost,
            "charged": charged,
            "tpm": tpm_limit >= 0,
            "deadline": now + slot_ms,
            "key": a[23],
            "at": now,
            **({"rec": a[24]} if len(a) > 24 and a[24] else {}),
        }
        remaining_rpm = rpm_limit - len(log) if rpm_limit >= 0 else -1
        remaining_tpm = tpm_limit - tpm_used - est_tokens if tpm_limit >= 0 else -1
        return [1, "ok", remaining_rpm, remaining_tpm, window - now % window, ",".join(flags)]

    def extend(self, keys: list[str], request_id: str, slot_ms: int) -> None:
        with self.lock:
            reservation = self.values.get(keys[0])
            if reservation is None:
                return
            deadline = int(time.time() * 1000) + slot_ms
            reservation["deadline"] = deadline
            slots = self.values.get(keys[2])
            if isinstance(slots, dict) and request_id in slots:
                slots[request_id] = deadline

    def _adjust(self, key: str, delta: int) -> None:
        """As settle.lua: never below zero, never above the ceiling; a counter out of range is dropped."""
        value = self.values.get(key)
        if delta == 0 or value is None:
            return
        if not isinstance(value, int) or not 0 <= value <= MAX_COUNTER:
            del self.values[key]
            return
        self.values[key] = min(max(value + delta, 0), MAX_COUNTER)

    def settle(self, keys: list[str], args: list[Any]) -> int:
        tokens, cost, requests = int(args[1]), int(args[2]), int(args[3])
        if not (0 <= tokens <= MAX_AMOUNT and 0 <= cost <= MAX_AMOUNT and requests in (0, 1)):
            return -4
        with self.lock:
            reservation = self.values.pop(keys[0], None)
            if reservation is None:
                if int(args[4]) != 1:
                    return 0
                for slot, amount in {3: tokens, 4: cost, 5: cost, 6: requests, 7: tokens, 8: cost}.items():
                    self._adjust(keys[slot], amount)
                self.values.get(keys[2], {}).pop(args[0], None)
                return 2
            tokens_delta = tokens - reservation["tokens"]
            cost_delta = cost - reservation["cost"]
            deltas = {
                "budget_day": (4, cost_delta),
                "budget_month": (5, cost_delta),
                "api_requests": (6, requests - 1),
                "tokens": (7, tokens_delta),
                "spend_usd": (8, cost_delta),
            }
            if reservation["tpm"]:
                self._adjust(keys[3], tokens_delta)
            for name in reservation["charged"]:
                slot, delta = deltas[name]
                self._adjust(keys[slot], delta)
            self.values.get(keys[2], {}).pop(args[0], None)
            return 1


local = LocalAdmission()
