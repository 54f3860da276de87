"""The metered proxy pipeline: authenticate, validate, route, admit (one Redis call), call the upstream, settle,
write the ledger, answer — in OpenAI's shapes."""

from __future__ import annotations

import asyncio
import contextvars
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import structlog
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse

from apps.consumption import admission, ledger, runtime, upstream
from apps.consumption import stream as ledger_stream
from apps.consumption.conf import consumption_settings
from apps.consumption.keys import KeyInfo
from apps.consumption.models import Scope
from apps.publishing import echo
from apps.publishing.selectors import Route
from apps.tenancy import quotas
from llm_infra_django.body import read_body
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import (
    AppError,
    ExternalServiceError,
    InternalError,
    RateLimitError,
    ValidationError,
    to_app_error,
)
from llm_infra_django.redis import get_async_redis
from llm_infra_django.responses import openai_error_response

logger = structlog.get_logger(__name__)
COST_QUANTUM = Decimal("0.0000000001")
WORKER_LOST = "worker_lost"
# A stream that keeps flowing pushes its reservation's deadline ahead this often (the slot lifetime is the SLA
# timeout plus 30 s): only reservations of requests nobody serves any more expire.
EXTEND_EVERY_SECONDS = 10.0
_background: set[asyncio.Task[Any]] = set()


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


def spawn(coroutine: Any) -> None:
    """Run work that outlives the request in a fresh context (not tied to the request's thread executor), keeping a
    reference so it is not garbage-collected before it ends."""
    task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
    _background.add(task)
    task.add_done_callback(_background.discard)


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
    n = _int_field(body, "n", 1) or 1
    max_tokens = _int_field(body, "max_tokens", 1)
    if kind == "chat":
        max_tokens = _int_field(body, "max_completion_tokens", 1) or max_tokens
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
    else:
        completion = max_tokens
    call.stream = stream
    call.include_usage = bool(options and options.get("include_usage"))
    call.prompt_estimate = prompt
    # The echo provider counts with our own tokenizer, so its count is exact; any other upstream may count more.
    call.prompt_bound = prompt if route.protocol == "echo" else _prompt_bound(kind, body, prompt)
    call.completion_estimate = completion * n


def price(route: Route, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """The cost of a call at the route's prices (Decimal, 10 places)."""
    cost = Decimal(0)
    if route.pricing_model == "per_token":
        cost += Decimal(prompt_tokens) * (route.price_input_per_mtok or 0) / 1_000_000
        cost += Decimal(completion_tokens) * (route.price_output_per_mtok or 0) / 1_000_000
    elif route.pricing_model == "per_request":
        cost += route.price_per_request or Decimal(0)
    return cost.quantize(COST_QUANTUM)


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
    prompt_tokens: int,
    completion_tokens: int,
    cost: Decimal,
    error_code: str = "",
    estimated: bool = False,
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
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        price_snapshot=price_snapshot(call.route),
        latency_ms=round((time.perf_counter() - call.started) * 1000, 3),
        ttft_ms=ttft_ms,
        status_code=status,
        error_code=error_code,
        estimated=estimated,
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
        prompt_tokens=call.prompt_estimate,
        completion_tokens=0,
        cost=price(call.route, call.prompt_estimate, 0),
        error_code=WORKER_LOST,
        estimated=True,
    )
    return ledger_stream.encode(entry)["e"]


async def record(
    call: Call,
    *,
    status: int,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    cost: Decimal | None = None,
    error_code: str = "",
    estimated: bool = False,
    ttft_ms: float | None = None,
    counted: bool = True,
) -> Decimal:
    """Settle the reservation with what was used and record the usage: with Redis the record is appended to the
    ledger stream in the settlement's round trip (no SQL on the hot path) and kept in this process's outbox until
    the database has it; without Redis (or when it fails), it is written to the database before this returns."""
    assert call.key is not None and call.route is not None
    cost = price(call.route, prompt_tokens, completion_tokens) if cost is None else cost
    entry = _entry(
        call,
        status=status,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        cost=cost,
        error_code=error_code,
        estimated=estimated,
        ttft_ms=ttft_ms,
        counted=counted,
    )

    appended = None
    tokens = prompt_tokens + completion_tokens
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
                settle_keys=admission.settle_keys(call.ticket.keys),
                tokens=tokens,
                cost_micro=admission.to_micro(cost),
                counted=counted,
                message_id=appended[0],
                epoch=appended[1],
            )
        )
        ledger_stream.ensure_drainer()
    else:
        await ledger.writer().write(entry)
    return cost


def _usage_of(body: dict[str, Any]) -> tuple[int, int] | None:
    usage = body.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        completion = usage.get("completion_tokens")
        return usage["prompt_tokens"], completion if isinstance(completion, int) else 0
    return None


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
            est_cost=price(call.route, call.prompt_bound, call.completion_estimate),
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
    """Shield scan and Policy Engine decision, when configured (each fails open or closed per its settings)."""
    from llm_infra_django.upstreams import get_policy_engine_client, get_shield_client

    shield, policy = get_shield_client(), get_policy_engine_client()
    if not shield.is_configured() and not policy.is_configured():
        return
    assert call.key is not None and call.route is not None
    if policy.is_configured():
        decision = await policy.aevaluate(
            "consumption",
            tenant=call.key.tenant_slug,
            resource={"model": call.route.model_id, "category": call.route.category},
            context={"key_id": call.key.id, "endpoint": call.kind},
        )
        decision.raise_for_violations()
    if shield.is_configured() and call.kind == "chat":
        text = "\n".join(str(m.get("content") or "") for m in call.body.get("messages") or [] if isinstance(m, dict))
        verdict = await shield.ascan(text, direction="prompt", tenant=call.key.tenant_slug, model=call.route.model_id)
        if verdict.blocked:
            from llm_infra_django.errors import PolicyViolationError

            raise PolicyViolationError(
                "The prompt was blocked by the safety scan.", violations=[r.__dict__ for r in verdict.reasons]
            )


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


async def _complete(call: Call, *, native: bool) -> HttpResponse:
    assert call.route is not None
    try:
        answer = await upstream.call(call.route, call.kind, call.body, call.request_id)
    except (upstream.UpstreamStatusError, AppError) as exc:
        return await _upstream_failed(call, exc)
    body = answer.body
    usage = _usage_of(body)
    estimated = usage is None
    if usage is None:
        usage = (call.prompt_estimate, echo.count_tokens(_text_of(body)))
    cost = await record(call, status=200, prompt_tokens=usage[0], completion_tokens=usage[1], estimated=estimated)
    latency_ms = round((time.perf_counter() - call.started) * 1000, 3)
    if native:
        payload = {
            "request_id": call.request_id,
            "response": _text_of(body),
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": usage[0] + usage[1],
                "estimated": estimated,
            },
            "cost": str(cost),
            "latency_ms": latency_ms,
        }
    else:
        body.setdefault(
            "usage", {"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": usage[0] + usage[1]}
        )
        if isinstance(body["usage"], dict):
            body["usage"]["cost"] = float(cost)
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
    response = StreamingHttpResponse(_relay(call, stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-Request-ID"] = call.request_id
    limit_headers(response, call.ticket)
    return response


async def _relay(call: Call, stream: upstream.Stream) -> AsyncIterator[bytes]:
    """Pass the upstream's events through; read usage from the final chunk (else count the delivered text);
    whatever ends the stream — its end, an upstream failure, or the client leaving — the delivered part is billed
    and the upstream request is closed."""
    delivered: list[str] = []
    usage: tuple[int, int] | None = None
    ttft_ms: float | None = None
    failure: BaseException | None = None
    completed = False
    extended = time.monotonic()
    try:
        async for event in stream.events():
            if call.ticket is not None and time.monotonic() - extended >= EXTEND_EVERY_SECONDS:
                extended = time.monotonic()
                await admission.extend(call.ticket)
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
                    chunk_usage = _usage_of(chunk)
                    if chunk_usage is not None:
                        usage = chunk_usage
                        if not call.include_usage and not chunk.get("choices"):
                            continue  # the client did not ask for the usage chunk: bill from it, do not send it
                        assert call.route is not None
                        chunk["usage"]["cost"] = float(price(call.route, *chunk_usage))
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
    usage: tuple[int, int] | None,
    ttft_ms: float | None,
    completed: bool,
    failure: BaseException | None,
) -> None:
    await stream.close(failure if isinstance(failure, Exception) else None)
    estimated = usage is None
    if usage is None:
        usage = (call.prompt_estimate, echo.count_tokens("".join(delivered)))
    status, error_code = 200, ""
    if not completed:
        status, error_code = 499, "client_disconnected" if not isinstance(failure, Exception) else "stream_failed"
    try:
        await record(
            call,
            status=status,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            estimated=estimated,
            ttft_ms=ttft_ms,
            error_code=error_code,
        )
    except Exception:
        logger.exception("stream_billing_failed", request_id=call.request_id)
