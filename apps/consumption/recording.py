"""Settle and record, the stages after the upstream: the call billed from the provider's claim (bounded by what was
admitted), the reservation settled with it and the usage record written — in one Redis round trip with the ledger
stream, else straight to the database."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from apps.consumption import admission, claims, ledger, ledger_stream, tokenizer
from apps.consumption.answers import upstream_error
from apps.consumption.call import Call
from apps.consumption.claims import BilledUsage
from apps.consumption.models import WITHHELD_BLOCKED, WITHHELD_UNSCREENED
from apps.consumption.pricing import price, price_snapshot
from apps.consumption.protocol import SettleArgs
from apps.consumption.upstream import UpstreamStatusError
from apps.tenancy import quotas
from apps.tenancy.money import to_units
from llm_infra_django.background import spawn
from llm_infra_django.errors import AppError, PolicyViolationError, to_app_error
from llm_infra_django.redis import get_async_redis

logger = structlog.get_logger(__name__)
WORKER_LOST = "worker_lost"
NO_USAGE = BilledUsage(prompt_tokens=0, completion_tokens=0)


def bill(call: Call, reported: Any, delivered_text: str) -> BilledUsage:
    """What the call is billed for: the provider's `usage` (`reported`), bounded by what admission reserved, else
    our own count of the prompt and of the delivered text (see claims.bill)."""
    return claims.bill(
        reported,
        prompt_bound=call.prompt_bound,
        completion_bound=call.completion_estimate,
        counted_prompt=call.prompt_estimate,
        counted_completion=tokenizer.count_tokens(delivered_text),
        completion_expected=call.kind != "embeddings",
    )


def withheld_code(error: AppError) -> str:
    """The error code of a record whose answer the response scan withheld (blocked, or the scan failed closed)."""
    return WITHHELD_BLOCKED if isinstance(error, PolicyViolationError) else WITHHELD_UNSCREENED


def _quota_periods(call: Call) -> dict[str, tuple[datetime, datetime]]:
    """The quota periods the call's start falls in (computed once: the orphan record and the record share them)."""
    assert call.key is not None
    if call.quota_periods is None:
        call.quota_periods = {
            name: quotas.period_bounds(snapshot.period, call.key.tenant_timezone, call.started_at)
            for name, snapshot in call.key.quota_limits.items()
        }
    return call.quota_periods


def _entry(
    call: Call,
    *,
    status: int,
    usage: BilledUsage,
    cost: Decimal,
    error_code: str = "",
    ttft_ms: float | None = None,
    counted: bool = True,
) -> ledger.Entry:
    assert call.key is not None and call.route is not None
    return ledger.Entry(
        request_id=call.request_id,
        tenant_id=call.key.tenant_id,
        api_key_id=call.key.id,
        publisher_id=call.route.publisher_id,
        service_version_id=call.route.version_id,
        model_id=call.route.model_id,
        endpoint=call.kind,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        reported_prompt_tokens=usage.reported_prompt_tokens,
        reported_completion_tokens=usage.reported_completion_tokens,
        usage_disputed=usage.disputed,
        cost=cost,
        price_snapshot=price_snapshot(call.route),
        latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        ttft_ms=ttft_ms,
        status_code=status,
        error_code=error_code,
        estimated=usage.estimated,
        stream=call.stream,
        started_at=call.started_at,
        finished_at=datetime.now(UTC),
        tenant_timezone=call.key.tenant_timezone,
        quota_periods=_quota_periods(call) if counted else {},
        provider=call.route.offer_id,
        attempts=call.attempts,
    )


def orphan_record(call: Call) -> str:
    """The record of this request should its process die before recording it (kept with the reservation; the
    reconciler writes it): a 499 `worker_lost`, billed for the prompt only, flagged as estimated."""
    assert call.route is not None
    entry = _entry(
        call,
        status=499,
        usage=BilledUsage(prompt_tokens=call.prompt_estimate, completion_tokens=0, estimated=True),
        cost=price(call.route, call.prompt_estimate, 0),
        error_code=WORKER_LOST,
    )
    return ledger_stream.encode(entry)["e"].decode()


async def record(
    call: Call,
    *,
    status: int,
    usage: BilledUsage = NO_USAGE,
    error_code: str = "",
    ttft_ms: float | None = None,
    counted: bool = True,
) -> Decimal:
    """Settle the reservation with what was used and record the usage: with Redis the record is appended to the
    ledger stream in the settlement's round trip (no SQL on the hot path) and kept in this process's outbox until
    the database has it; without Redis (or when it fails), it is written to the database before this returns.
    Returns the call's cost."""
    assert call.key is not None and call.route is not None
    cost = price(call.route, usage.prompt_tokens, usage.completion_tokens)
    entry = _entry(call, status=status, usage=usage, cost=cost, error_code=error_code, ttft_ms=ttft_ms, counted=counted)
    appended = None
    if call.ticket is not None:
        streamed = None
        if get_async_redis() is not None:
            key = ledger_stream.stream_key()
            streamed = (key, ledger_stream.encode(entry), ledger_stream.epoch_key(key))
        appended = await admission.settle(
            call.ticket, tokens=usage.total_tokens, cost=cost, counted=counted, record=streamed, charge_missing=True
        )
    if appended is None:
        await ledger.writer().write(entry)
        return cost
    assert call.ticket is not None
    ledger_stream.remember(
        ledger_stream.Sent(
            entry=entry,
            keys=call.ticket.keys,
            usage=SettleArgs(call.request_id, usage.total_tokens, to_units(cost), counted),
            message_id=appended[0],
            epoch=appended[1],
        )
    )
    ledger_stream.ensure_drainer()
    return cost


async def record_failure(call: Call, exc: Exception) -> AppError:
    """A call that failed at (or on the way to) the upstream, recorded with its error (no usage, not counted as a
    request); returns the error the client gets."""
    error = _error_of(call, exc)
    await record(call, status=error.status_code, error_code=error.code, counted=False)
    return error


def _error_of(call: Call, exc: Exception) -> AppError:
    """The client-facing error of an upstream failure: its status passed on (4xx) or a 502, else the app error."""
    assert call.route is not None
    error = upstream_error(exc, call.route) if isinstance(exc, UpstreamStatusError) else to_app_error(exc)
    assert error is not None
    return error


def attempt_id(request_id: str, attempt: int) -> str:
    """The request id of a call's failed attempt `attempt` (1, 2…): `<request id>.<attempt>`, within 64 characters."""
    suffix = f".{attempt}"
    return request_id[: 64 - len(suffix)] + suffix


async def record_attempt(call: Call, exc: Exception) -> None:
    """A failed attempt at one offer, before the call falls back to the next: a record of its own (the provider's
    SLA counts it; the consumer is billed nothing for it and it counts against no quota), linked to the call by
    `attempt_of`. Written in the background: the fallback does not wait for the database."""
    error = _error_of(call, exc)
    entry = _entry(
        call, status=error.status_code, usage=NO_USAGE, cost=Decimal(0), error_code=error.code, counted=False
    )
    entry.request_id = attempt_id(call.request_id, call.attempts + 1)
    entry.attempt_of = call.request_id
    entry.attempts = 0
    spawn(_write_attempt(entry))


async def _write_attempt(entry: ledger.Entry) -> None:
    try:
        await ledger.writer().write(entry)
    except Exception as exc:
        logger.error("attempt_record_failed", request_id=entry.request_id, error=type(exc).__name__)
