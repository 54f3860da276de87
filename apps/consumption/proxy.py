"""The metered proxy's orchestrator: a call goes through the stages in order — authenticate (key_lookup), resolve
the route (routing), validate and estimate (estimates), screen (screening), admit (admission: one Redis call), call
the upstream (upstream; streaming for streams), settle and record (recording), answer (answers) — and every error
becomes OpenAI's error shape. No stage imports this module."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import structlog

from apps.consumption import admission, estimates, fallback, key_lookup, routing, screening, streaming, upstream
from apps.consumption.answers import Reply, completion_reply, error_reply, failure_reply, text_of
from apps.consumption.call import Call
from apps.consumption.models import Scope
from apps.consumption.recording import bill, orphan_record, record, record_failure, withheld_code
from llm_infra_django.background import spawn
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AppError
from llm_infra_django.redis import get_async_redis

logger = structlog.get_logger(__name__)


async def handle(
    kind: str,
    *,
    authorization: str | None,
    body: bytes | dict[str, Any],
    request_id: str | None = None,
    native: bool = False,
) -> Reply:
    """Serve one proxied call end to end: `kind` is chat, completions or embeddings; `body` the raw request body
    (or, for the native endpoint, the chat body it stands for)."""
    call = Call(
        request_id=request_id or os.urandom(16).hex(),
        kind=kind,
        started=time.perf_counter(),
        started_at=datetime.now(UTC),
    )
    try:
        call.key = await key_lookup.authenticate(authorization)
        key_lookup.require_scope(call.key, Scope.CONSUME)
        call.body = body if isinstance(body, dict) else estimates.parse_body(body)
        call.candidates = await routing.plan_routes(call.body, call.key)
        estimates.estimate(call, call.candidates)
        await _screen(call)
        call.route = call.candidates[0]
        call.ticket = await admission.admit(
            key=call.key,
            request_id=call.request_id,
            limits=call.key.quota_limits,
            est_tokens=call.prompt_bound + call.completion_estimate,
            est_cost=call.reservation,
            # the parallel slot lasts as long as every attempt may take
            timeout_s=sum(route.sla_timeout_ms for route in call.candidates) / 1000,
            orphan_record=orphan_record(call) if get_async_redis() is not None else "",
        )
        _emit_quota_events(call)
        if call.stream:
            return await streaming.stream(call)
        return await _complete(call, native=native)
    except AppError as error:
        return error_reply(error, call.request_id)
    except Exception as exc:
        if call.ticket is not None and not call.ticket.settled:
            await admission.settle(call.ticket, tokens=0, cost=Decimal(0), counted=False)
        return failure_reply(exc, call.request_id)


async def _screen(call: Call) -> None:
    """Policy Engine and Shield, when configured; a redacted prompt is counted again before admission."""
    assert call.key is not None and call.candidates
    first = call.candidates[0]
    changed = await screening.screen_request(
        call.kind,
        call.body,
        tenant=call.key.tenant_slug,
        model=first.model_id,
        key_id=call.key.id,
        category=first.category,
    )
    if changed:
        estimates.estimate(call, call.candidates)


def _emit_quota_events(call: Call) -> None:
    """The soft-limit and alert events admission flagged, sent off the hot path."""
    if not call.ticket or not call.ticket.flags:
        return

    def fire(flags: list[str], tenant_id: str) -> None:
        from apps.tenancy.models import Tenant
        from apps.tenancy.signals import quota_alert, quota_soft_limit_reached

        tenant = Tenant.objects.filter(pk=tenant_id).first()
        for flag in flags:
            kind, _, quota = flag.partition(":")
            signal = quota_soft_limit_reached if kind == "soft" else quota_alert
            logger.warning(f"quota_{'soft_limit_reached' if kind == 'soft' else 'alert'}", quota=quota)
            signal.send(sender=Tenant, tenant=tenant, quota_type=quota, limit=None, used=None, period_end=None)

    spawn(database_sync_to_async(fire, thread_sensitive=False)(call.ticket.flags, call.ticket.tenant_id))


async def _complete(call: Call, *, native: bool) -> Reply:
    """A non-streamed call: the upstream's answer (from the first offer of its plan that answers), billed (bounded
    by the reservation), screened, recorded."""
    assert call.key is not None and call.route is not None
    while True:
        try:
            answer = await upstream.call(call.route, call.kind, call.body, call.request_id)
            break
        except (upstream.UpstreamStatusError, AppError) as exc:
            if not await fallback.next_offer(call, exc):
                return error_reply(await record_failure(call, exc), call.request_id)
    body = answer.body
    usage = bill(call, body.get("usage"), text_of(body))
    if screening.screens_responses():
        try:
            await screening.screen_answer(body, tenant=call.key.tenant_slug, model=call.route.model_id)
        except AppError as error:
            # The upstream served the call: it is billed, and the answer withheld.
            await record(call, status=error.status_code, usage=usage, error_code=withheld_code(error))
            return error_reply(error, call.request_id)
    cost = await record(call, status=200, usage=usage)
    latency_ms = round((time.perf_counter() - call.started) * 1000, 3) if native else None
    return completion_reply(
        body,
        usage,
        cost,
        request_id=call.request_id,
        ticket=call.ticket,
        provider=call.route.offer_id,
        native_latency_ms=latency_ms,
    )
