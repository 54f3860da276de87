"""The metered proxy pipeline: authenticate, validate, route, admit (one Redis call), call the upstream, settle,
write the ledger, answer — in OpenAI's shapes."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

import orjson
import structlog
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.consumption import admission, claims, ledger, ledger_stream, runtime, screening, upstream
from apps.consumption.claims import BilledUsage
from apps.consumption.conf import consumption_settings
from apps.consumption.keys import KeyInfo
from apps.consumption.models import WITHHELD_BLOCKED, WITHHELD_UNSCREENED, Scope
from apps.consumption.protocol import MAX_AMOUNT, SettleArgs
from apps.publishing import echo
from apps.publishing.selectors import Route
from apps.tenancy import quotas
from apps.tenancy.money import to_units
from llm_infra_django.background import spawn
from llm_infra_django.body import read_body
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import (
    AppError,
    ExternalServiceError,
    InternalError,
    PolicyViolationError,
    RateLimitError,
    ValidationError,
    to_app_error,
)
from llm_infra_django.redis import get_async_redis
from llm_infra_django.responses import openai_error_response

logger = structlog.get_logger(__name__)
COST_QUANTUM = Decimal("0.0000000001")
WORKER_LOST = "worker_lost"
NO_USAGE = BilledUsage(prompt_tokens=0, completion_tokens=0)
# A stream that keeps flowing pushes its reservation's deadline ahead this often (the slot lifetime is the SLA
# timeout plus 30 s): only reservations of requests nobody serves any more expire.
EXTEND_EVERY_SECONDS = 10.0


@dataclass
class Call:
    """Everything known about one proxied request as it goes through the pipeline."""

    request_id: str
    kind: str
    started: float
    started_at: datetime
    key: KeyInfo | None = None
    route: Route | None = None
    body: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    prompt_estimate: int = 0
    prompt_bound: int = 0  # at least what any upstream can count: what admission reserves
    completion_estimate: int = 0
    ticket: admission.Ticket | None = None
    quota_periods: dict[str, tuple[datetime, datetime]] | None = None
    withheld: AppError | None = None  # the answer the response scan withheld (the call is billed all the same)


# --- Validation and estimates ----------------------------------------------------------------------------------


def request_body(request: Any) -> bytes:
    """The body, at most `MAX_BODY_BYTES` (a 413 otherwise, before a larger one is read)."""
    return read_body(request, consumption_settings.MAX_BODY_BYTES, code="request_too_large")


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ValidationError(
            "The request body is not valid JSON.", fields={"body": ["Invalid JSON."]}, code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise ValidationError("The request body must be a JSON object.", fields={"body": ["Not an object."]})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ValidationError("You must provide a model parameter.", fields={"model": ["Required string."]})
    return body


def _int_field(body: dict[str, Any], name: str, minimum: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValidationError(f"'{name}' must be an integer ≥ {minimum}.", fields={name: [f"Integer ≥ {minimum}."]})
    return value


def _prompt_tokens(kind: str, body: dict[str, Any]) -> int:
    if kind == "chat":
        return echo.count_chat_prompt_tokens(body.get("messages"))
    value = body.get("prompt" if kind == "completions" else "input")
    field_name = "prompt" if kind == "completions" else "input"
    if isinstance(value, str):
        return echo.count_tokens(value)
    if isinstance(value, list) and value:
        if all(isinstance(item, str) for item in value):
            return sum(echo.count_tokens(item) for item in value)
        if all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return len(value)
        if all(isinstance(item, list) and all(isinstance(i, int) for i in item) for item in value):
            return sum(len(item) for item in value)
    raise ValidationError(
        f"'{field_name}' must be a string or a list of strings or token ids.",
        fields={field_name: ["String, list of strings, or token ids."]},
    )


def _prompt_bound(kind: str, body: dict[str, Any], counted: int) -> int:
    """An upper bound of the prompt tokens any upstream can count: byte-level BPE tokenizers never make more tokens
    than the text has UTF-8 bytes, and the JSON of the messages exceeds their text by more than any per-message
    overhead. Reservations use it, so actual usage never costs more than was reserved and budgets and quotas hold."""
    value = body.get("messages") if kind == "chat" else body.get("prompt" if kind == "completions" else "input")
    if isinstance(value, list) and value and all(isinstance(item, (int, list)) for item in value):
        return counted  # token ids: the count is exact
    return max(counted, len(orjson.dumps(value)) + 3)


def estimate(call: Call, route: Route) -> None:
    """Validate the fields that decide cost and count the prompt; nothing reaches the upstream before this."""
    body, kind = call.body, call.kind
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ValidationError("'stream' must be a boolean.", fields={"stream": ["Boolean."]})
    if stream and kind == "embeddings":
        raise ValidationError("Embeddings cannot be streamed.", fields={"stream": ["Not supported."]})
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ValidationError("'stream_options' must be an object.", fields={"stream_options": ["Object."]})
    for name, low, high in (("temperature", 0, 2), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high
        ):
            raise ValidationError(f"'{name}' must be a number from {low} to {high}.", fields={name: ["Out of range."]})
    n = _bounded_int(body, "n", consumption_settings.MAX_N) or 1
    max_tokens = _bounded_int(body, "max_tokens", route.context_length)
    if kind == "chat":
        max_tokens = _bounded_int(body, "max_completion_tokens", route.context_length) or max_tokens
    prompt = _prompt_tokens(kind, body)
    if prompt > route.context_length:
        raise ValidationError(
            f"The prompt has {prompt} tokens; this model's context length is {route.context_length}.",
            fields={"messages" if kind == "chat" else "prompt": ["Too long."]},
            code="context_length_exceeded",
        )
    if kind == "embeddings":
        completion = 0
    elif max_tokens is None:
        default = (
            echo.COMPLETIONS_DEFAULT_MAX_TOKENS if kind == "completions" else consumption_settings.DEFAULT_MAX_TOKENS
        )
        completion = max(1, min(default, route.context_length - prompt))
        # The upstream is asked for no more than was reserved: what it generates beyond is never billed.
        body["max_tokens"] = completion
    else:
        completion = max_tokens
    call.stream = stream
    call.include_usage = bool(options and options.get("include_usage"))
    call.prompt_estimate = prompt
    # The echo provider counts with our own tokenizer, so its count is exact; any other upstream may count more.
    call.prompt_bound = prompt if route.protocol == "echo" else _prompt_bound(kind, body, prompt)
    call.completion_estimate = completion * n
    field_name = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    if call.prompt_bound + call.completion_estimate > MAX_AMOUNT or (
        to_units(reservation_price(route, call.prompt_bound, call.completion_estimate)) > MAX_AMOUNT
    ):
        raise ValidationError(
            "This request could cost more than one call may reserve; lower max_tokens or n.",
            fields={field_name: ["Too large for one call."]},
        )


def _bounded_int(body: dict[str, Any], name: str, maximum: int) -> int | None:
    value = _int_field(body, name, 1)
    if value is not None and value > maximum:
        raise ValidationError(f"'{name}' must be at most {maximum}.", fields={name: [f"At most {maximum}."]})
    return value


# Wide enough for any product of a token count and a price (DecimalField(20, 10)): never an InvalidOperation.
_PRICE_CONTEXT = Context(prec=60)


def price(route: Route, prompt_tokens: int, completion_tokens: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """The cost of a call at the route's prices (Decimal, 10 places: the ledger's quantum, `rounding` to it)."""
    with localcontext(_PRICE_CONTEXT):
        cost = Decimal(0)
        if route.pricing_model == "per_token":
            cost += Decimal(prompt_tokens) * (route.price_input_per_mtok or 0) / 1_000_000
            cost += Decimal(completion_tokens) * (route.price_output_per_mtok or 0) / 1_000_000
        elif route.pricing_model == "per_request":
            cost += route.price_per_request or Decimal(0)
        return cost.quantize(COST_QUANTUM, rounding=rounding)


def reservation_price(route: Route, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What admission reserves for these token counts: their price rounded up, so never less than any cost billed
    for fewer tokens."""
    return price(route, prompt_tokens, completion_tokens, rounding=ROUND_CEILING)


def price_snapshot(route: Route) -> dict[str, Any]:
    return {
        "pricing_model": route.pricing_model,
        "input_per_mtok": str(route.price_input_per_mtok) if route.price_input_per_mtok is not None else None,
        "output_per_mtok": str(route.price_output_per_mtok) if route.price_output_per_mtok is not None else None,
        "per_request": str(route.price_per_request) if route.price_per_request is not None else None,
        "version": route.version,
    }


# --- Responses -------------------------------------------------------------------------------------------------


def error_response(error: AppError, request_id: str) -> HttpResponse:
    response = openai_error_response(error)
    response["X-Request-ID"] = request_id
    return response


def failure_response(exc: Exception, request_id: str) -> HttpResponse:
    """OpenAI's error shape for any failure: a known one keeps its meaning (the database away: 503); anything else
    is logged and answered as a 500 without internals."""
    error = to_app_error(exc)
    if error is None:
        logger.exception("proxy_failed", request_id=request_id, exc_type=type(exc).__name__)
        error = InternalError()
    return error_response(error, request_id)


def limit_headers(response: HttpResponse, ticket: admission.Ticket | None) -> None:
    if ticket is None:
        return
    if ticket.rpm_limit is not None:
        response["X-RateLimit-Limit-Requests"] = str(ticket.rpm_limit)
        response["X-RateLimit-Remaining-Requests"] = str(max(ticket.rpm_remaining or 0, 0))
        response["X-RateLimit-Reset-Requests"] = "60s"
    if ticket.tpm_limit is not None:
        response["X-RateLimit-Limit-Tokens"] = str(ticket.tpm_limit)
        response["X-RateLimit-Remaining-Tokens"] = str(max(ticket.tpm_remaining or 0, 0))
        response["X-RateLimit-Reset-Tokens"] = f"{max(ticket.tpm_reset_ms, 0) / 1000:.3f}s"


def upstream_error(exc: upstream.UpstreamStatusError, route: Route) -> AppError:
    """The client-facing error for an upstream error status: its 4xx passed on, its 5xx as 502."""
    if exc.status_code < 500:
        message = "The upstream refused the request."
        try:
            detail = orjson.loads(exc.body)
            message = (detail.get("error") or {}).get("message") or message
        except (orjson.JSONDecodeError, AttributeError):
            pass
        if exc.status_code == 429:
            return RateLimitError(f"The upstream is rate limiting: {message}", retry_after=1)
        return AppError(message, status_code=exc.status_code, code="upstream_rejected")
    return ExternalServiceError(f"The upstream of {route.model_id} failed ({exc.status_code}).", service=route.model_id)


# --- Ledger --------------------------------------------------------------------------------------------------


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
        model_id=call.route.model_id if "@" not in call.body.get("model", "") else call.body["model"],
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
    )


def _orphan_record(call: Call) -> str:
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
    return ledger_stream.encode(entry)["e"]


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
    the database has it; without Redis (or when it fails), it is written to the database before this returns."""
    assert call.key is not None and call.route is not None
    cost = price(call.route, usage.prompt_tokens, usage.completion_tokens)
    entry = _entry(call, status=status, usage=usage, cost=cost, error_code=error_code, ttft_ms=ttft_ms, counted=counted)

    appended = None
    tokens = usage.total_tokens
    if call.ticket is not None:
        streamed = None
        if get_async_redis() is not None:
            key = ledger_stream.stream_key()
            streamed = (key, ledger_stream.encode(entry), ledger_stream.epoch_key(key))
        appended = await admission.settle(
            call.ticket, tokens=tokens, cost=cost, counted=counted, record=streamed, charge_missing=True
        )
    if appended is not None:
        assert call.ticket is not None
        ledger_stream.remember(
            ledger_stream.Sent(
                entry=entry,
                keys=call.ticket.keys,
                usage=SettleArgs(call.request_id, tokens, to_units(cost), counted),
                message_id=appended[0],
                epoch=appended[1],
            )
        )
        ledger_stream.ensure_drainer()
    else:
        await ledger.writer().write(entry)
    return cost


def bill(call: Call, reported: Any, delivered_text: str) -> BilledUsage:
    """What the call is billed for: the provider's `usage` (`reported`), bounded by what admission reserved, else
    our own count of the prompt and of the delivered text (see claims.bill)."""
    return claims.bill(
        reported,
        prompt_bound=call.prompt_bound,
        completion_bound=call.completion_estimate,
        counted_prompt=call.prompt_estimate,
        counted_completion=echo.count_tokens(delivered_text),
        completion_expected=call.kind != "embeddings",
    )


def billed_usage(usage: BilledUsage, cost: Decimal) -> dict[str, Any]:
    """The `usage` object the client gets: the billed counts (not the provider's claim) and their cost."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "cost": float(cost),
    }


def _text_of(body: dict[str, Any]) -> str:
    parts = []
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or choice.get("delta") or {}
            parts.append(str(message.get("content") or "") if isinstance(message, dict) else "")
            parts.append(str(choice.get("text") or ""))
    return "".join(parts)


# --- The pipeline --------------------------------------------------------------------------------------------


async def handle(
    request: HttpRequest, kind: str, *, native: bool = False, body_override: dict[str, Any] | None = None
) -> HttpResponse:
    """Serve one proxied request end to end; every error becomes OpenAI's error shape."""
    call = Call(
        request_id=getattr(request, "request_id", None) or uuid.uuid4().hex,
        kind=kind,
        started=time.perf_counter(),
        started_at=datetime.now(UTC),
    )
    try:
        call.key = await runtime.authenticate(request.headers.get("Authorization"))
        runtime.require_scope(call.key, Scope.CONSUME)
        call.body = body_override if body_override is not None else parse_body(request_body(request))
        call.route = await runtime.resolve_route(call.body["model"], call.key)
        estimate(call, call.route)
        await _screen(call)
        call.ticket = await admission.admit(
            key=call.key,
            request_id=call.request_id,
            limits=call.key.quota_limits,
            est_tokens=call.prompt_bound + call.completion_estimate,
            est_cost=reservation_price(call.route, call.prompt_bound, call.completion_estimate),
            timeout_s=call.route.sla_timeout_ms / 1000,
            orphan_record=_orphan_record(call) if get_async_redis() is not None else "",
        )
        _emit_quota_events(call)
        if call.stream:
            return await _stream(call)
        return await _complete(call, native=native)
    except AppError as error:
        return error_response(error, call.request_id)
    except Exception as exc:
        if call.ticket is not None and not call.ticket.settled:
            await admission.settle(call.ticket, tokens=0, cost=Decimal(0), counted=False)
        return failure_response(exc, call.request_id)


async def _screen(call: Call) -> None:
    """Policy Engine and Shield, when configured; a redacted prompt is counted again before admission."""
    assert call.key is not None and call.route is not None
    changed = await screening.screen_request(
        call.kind,
        call.body,
        tenant=call.key.tenant_slug,
        model=call.route.model_id,
        key_id=call.key.id,
        category=call.route.category,
    )
    if changed:
        estimate(call, call.route)


def _emit_quota_events(call: Call) -> None:
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


async def _upstream_failed(call: Call, exc: Exception) -> HttpResponse:
    """A call that failed at (or on the way to) the upstream: recorded with its error, answered in OpenAI's shape."""
    assert call.route is not None
    error = upstream_error(exc, call.route) if isinstance(exc, upstream.UpstreamStatusError) else exc
    assert isinstance(error, AppError)
    await record(call, status=error.status_code, error_code=error.code, counted=False)
    return error_response(error, call.request_id)


def _withheld(error: AppError) -> str:
    """The error code of a record whose answer the response scan withheld (blocked, or the scan failed closed)."""
    return WITHHELD_BLOCKED if isinstance(error, PolicyViolationError) else WITHHELD_UNSCREENED


async def _complete(call: Call, *, native: bool) -> HttpResponse:
    assert call.key is not None and call.route is not None
    try:
        answer = await upstream.call(call.route, call.kind, call.body, call.request_id)
    except (upstream.UpstreamStatusError, AppError) as exc:
        return await _upstream_failed(call, exc)
    body = answer.body
    usage = bill(call, body.get("usage"), _text_of(body))
    if screening.screens_responses():
        try:
            await screening.screen_answer(body, tenant=call.key.tenant_slug, model=call.route.model_id)
        except AppError as error:
            # The upstream served the call: it is billed, and the answer withheld.
            await record(call, status=error.status_code, usage=usage, error_code=_withheld(error))
            return error_response(error, call.request_id)
    cost = await record(call, status=200, usage=usage)
    latency_ms = round((time.perf_counter() - call.started) * 1000, 3)
    if native:
        payload = {
            "request_id": call.request_id,
            "response": _text_of(body),
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
                "estimated": usage.estimated,
            },
            "cost": str(cost),
            "latency_ms": latency_ms,
        }
    else:
        reported = body.get("usage")
        body["usage"] = {**(reported if isinstance(reported, dict) else {}), **billed_usage(usage, cost)}
        payload = body
    response = HttpResponse(orjson.dumps(payload), content_type="application/json")
    response["X-Marketplace-Cost"] = str(cost)
    response["X-Request-ID"] = call.request_id
    limit_headers(response, call.ticket)
    return response


async def _stream(call: Call) -> HttpResponse:
    assert call.route is not None
    try:
        stream = await upstream.open_stream(call.route, call.kind, call.body, call.request_id)
    except (upstream.UpstreamStatusError, AppError) as exc:
        return await _upstream_failed(call, exc)
    events = stream.events()
    if screening.screens_responses():
        withheld, events = await _screen_stream(call, stream)
        if withheld is not None:
            return error_response(withheld, call.request_id)
    response = StreamingHttpResponse(_relay(call, stream, events), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-Request-ID"] = call.request_id
    limit_headers(response, call.ticket)
    return response


async def _keeping_alive(call: Call, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The events, pushing the reservation's deadline ahead while they flow (see EXTEND_EVERY_SECONDS)."""
    extended = time.monotonic()
    async for event in events:
        if call.ticket is not None and time.monotonic() - extended >= EXTEND_EVERY_SECONDS:
            extended = time.monotonic()
            await admission.extend(call.ticket)
        yield event


async def _screen_stream(call: Call, stream: upstream.Stream) -> tuple[AppError | None, AsyncIterator[bytes]]:
    """With response screening, a stream is read whole and scanned before its first byte reaches the client. Returns
    (None, the screened events to relay), or (the error to answer, nothing) when the answer is withheld: blocked,
    the scan failing closed, or the upstream failing midway — the call is then billed and recorded all the same."""
    assert call.key is not None and call.route is not None
    buffered: list[bytes] = []
    try:
        async for event in _keeping_alive(call, stream.events()):
            buffered.append(event)
        screened = await screening.screen_stream(buffered, tenant=call.key.tenant_slug, model=call.route.model_id)
    except Exception as exc:
        error = to_app_error(exc) or ExternalServiceError(
            f"The stream of {call.route.model_id} failed.", service=call.route.model_id
        )
        call.withheld = error if isinstance(exc, AppError) else None
        failing = _replay_then_raise(buffered, None if call.withheld else exc)
        async for _ in _relay(call, stream, failing):
            pass
        return error, screening.replay([])
    return None, screening.replay(screened)


async def _replay_then_raise(events: list[bytes], failure: Exception | None) -> AsyncIterator[bytes]:
    async for event in screening.replay(events):
        yield event
    if failure is not None:
        raise failure


async def _relay(call: Call, stream: upstream.Stream, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pass the upstream's events through; read usage from the final chunk (else count the delivered text);
    whatever ends the stream — its end, an upstream failure, or the client leaving — the delivered part is billed
    and the upstream request is closed."""
    delivered: list[str] = []
    usage: BilledUsage | None = None
    ttft_ms: float | None = None
    failure: BaseException | None = None
    completed = False
    try:
        async for event in _keeping_alive(call, events):
            data = event[len(b"data: ") :].strip() if event.startswith(b"data: ") else b""
            if data and data != b"[DONE]":
                try:
                    chunk = orjson.loads(data)
                except orjson.JSONDecodeError:
                    chunk = None
                if isinstance(chunk, dict):
                    text = _text_of(chunk)
                    if text:
                        if ttft_ms is None:
                            ttft_ms = round((time.perf_counter() - call.started) * 1000, 3)
                        delivered.append(text)
                    if isinstance(chunk.get("usage"), dict):
                        usage = bill(call, chunk["usage"], "".join(delivered))
                        if not call.include_usage and not chunk.get("choices"):
                            continue  # the client did not ask for the usage chunk: bill from it, do not send it
                        assert call.route is not None
                        cost = price(call.route, usage.prompt_tokens, usage.completion_tokens)
                        chunk["usage"] = {**chunk["usage"], **billed_usage(usage, cost)}
                        event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            elif data == b"[DONE]":
                completed = True
            yield event
        completed = True
    except BaseException as exc:
        failure = exc
        raise
    finally:
        spawn(_finish_stream(call, stream, delivered, usage, ttft_ms, completed, failure))


async def _finish_stream(
    call: Call,
    stream: upstream.Stream,
    delivered: list[str],
    usage: BilledUsage | None,
    ttft_ms: float | None,
    completed: bool,
    failure: BaseException | None,
) -> None:
    await stream.close(failure if isinstance(failure, Exception) else None)
    if usage is None:
        usage = bill(call, None, "".join(delivered))
    status, error_code = 200, ""
    if call.withheld is not None:
        status, error_code = call.withheld.status_code, _withheld(call.withheld)
    elif not completed:
        status, error_code = 499, "client_disconnected" if not isinstance(failure, Exception) else "stream_failed"
    try:
        await record(call, status=status, usage=usage, ttft_ms=ttft_ms, error_code=error_code)
    except Exception:
        logger.exception("stream_billing_failed", request_id=call.request_id)
