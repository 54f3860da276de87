"""A streamed call from the upstream to the client: the events relayed as they come (with the billed usage in the
usage chunk), the reservation kept alive while they flow, and — whatever ends the stream, its end, an upstream
failure or the client leaving — the delivered part billed and recorded, and the upstream request closed. With
response screening, the stream is read whole and scanned before its first byte is sent."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import orjson
import structlog

from apps.consumption import admission, fallback, screening, upstream
from apps.consumption.answers import Reply, billed_usage, error_reply, stream_error_event, stream_reply, text_of
from apps.consumption.call import Call
from apps.consumption.claims import BilledUsage
from apps.consumption.pricing import price
from apps.consumption.recording import bill, record, record_failure, withheld_code
from llm_infra_django.background import spawn
from llm_infra_django.errors import AppError, ExternalServiceError, to_app_error

logger = structlog.get_logger(__name__)
# A stream that keeps flowing pushes its reservation's deadline ahead this often (the slot lifetime is the SLA
# timeout plus 30 s): only reservations of requests nobody serves any more expire.
EXTEND_EVERY_SECONDS = 10.0


async def stream(call: Call) -> Reply:
    """Open the upstream stream and answer with the relay of its events (or the error that stopped it). An offer
    that fails before its first content event is left for the next one of the call's plan (nothing has reached the
    client yet); after it, the stream ends with an error event."""
    assert call.route is not None
    while True:
        try:
            opened = await upstream.open_stream(call.route, call.kind, call.body, call.request_id)
            events = await _from_first_content(call, opened)
            break
        except (upstream.UpstreamStatusError, AppError) as exc:
            if not await fallback.next_offer(call, exc):
                return error_reply(await record_failure(call, exc), call.request_id)
    if screening.screens_responses():
        withheld, events = await _screen(call, opened, events)
        if withheld is not None:
            return error_reply(withheld, call.request_id)
    return stream_reply(
        _relay(call, opened, events), request_id=call.request_id, ticket=call.ticket, provider=call.route.offer_id
    )


def _starts_answer(event: bytes) -> bool:
    """Whether the event delivers something of the answer (content, the usage chunk, or the end of the stream)."""
    data = event[len(b"data: ") :].strip() if event.startswith(b"data: ") else b""
    if data == b"[DONE]":
        return True
    try:
        chunk = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return False
    return isinstance(chunk, dict) and bool(text_of(chunk) or isinstance(chunk.get("usage"), dict))


async def _from_first_content(call: Call, opened: upstream.Stream) -> AsyncIterator[bytes]:
    """The stream's events, read ahead up to its first content event: a failure before it closes the upstream and
    raises (as `open_stream` would) so that the call can fall back; after it, events flow as they come."""
    assert call.route is not None
    events = opened.events()
    head: list[bytes] = []
    try:
        async for event in events:
            head.append(event)
            if _starts_answer(event):
                break
    except Exception as exc:
        error = upstream.transport_failure(call.route, exc) if isinstance(exc, upstream.TRANSPORT_ERRORS) else exc
        await opened.close(error)
        raise error from exc

    async def rest() -> AsyncIterator[bytes]:
        for event in head:
            yield event
        async for event in events:
            yield event

    return rest()


async def _keeping_alive(call: Call, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The events, pushing the reservation's deadline ahead while they flow (see EXTEND_EVERY_SECONDS)."""
    extended = time.monotonic()
    async for event in events:
        if call.ticket is not None and time.monotonic() - extended >= EXTEND_EVERY_SECONDS:
            extended = time.monotonic()
            await admission.extend(call.ticket)
        yield event


async def _screen(
    call: Call, opened: upstream.Stream, events: AsyncIterator[bytes]
) -> tuple[AppError | None, AsyncIterator[bytes]]:
    """Read the stream whole and scan it. Returns (None, the screened events to relay), or (the error to answer,
    nothing) when the answer is withheld: blocked, the scan failing closed, or the upstream failing midway — the
    call is then billed and recorded all the same."""
    assert call.key is not None and call.route is not None
    buffered: list[bytes] = []
    try:
        async for event in _keeping_alive(call, events):
            buffered.append(event)
        screened = await screening.screen_stream(buffered, tenant=call.key.tenant_slug, model=call.route.model_id)
    except Exception as exc:
        error = to_app_error(exc) or ExternalServiceError(
            f"The stream of {call.route.model_id} failed.", service=call.route.model_id
        )
        call.withheld = error if isinstance(exc, AppError) else None
        async for _ in _relay(call, opened, _replay_then_raise(buffered, None if call.withheld else exc)):
            pass
        return error, screening.replay([])
    return None, screening.replay(screened)


async def _replay_then_raise(events: list[bytes], failure: Exception | None) -> AsyncIterator[bytes]:
    async for event in screening.replay(events):
        yield event
    if failure is not None:
        raise failure


async def _relay(call: Call, opened: upstream.Stream, events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Pass the upstream's events through; read usage from the final chunk (else count the delivered text);
    whatever ends the stream, the delivered part is billed and the upstream request closed."""
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
                    text = text_of(chunk)
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
                        chunk["provider"] = call.route.offer_id
                        event = b"data: " + orjson.dumps(chunk) + b"\n\n"
            elif data == b"[DONE]":
                completed = True
            yield event
        completed = True
    except Exception as exc:
        # After the first byte nothing can be retried: the stream ends with an error event, the delivered part billed.
        failure = exc
        assert call.route is not None
        error = to_app_error(exc) or ExternalServiceError(
            f"The stream of {call.route.model_id} failed.", service=call.route.model_id
        )
        yield stream_error_event(error)
    except BaseException as exc:
        failure = exc
        raise
    finally:
        spawn(_finish(call, opened, delivered, usage, ttft_ms, completed, failure))


async def _finish(
    call: Call,
    opened: upstream.Stream,
    delivered: list[str],
    usage: BilledUsage | None,
    ttft_ms: float | None,
    completed: bool,
    failure: BaseException | None,
) -> None:
    await opened.close(failure if isinstance(failure, Exception) else None)
    if usage is None:
        usage = bill(call, None, "".join(delivered))
    status, error_code = 200, ""
    if call.withheld is not None:
        status, error_code = call.withheld.status_code, withheld_code(call.withheld)
    elif not completed:
        status, error_code = 499, "client_disconnected" if not isinstance(failure, Exception) else "stream_failed"
    try:
        await record(call, status=status, usage=usage, ttft_ms=ttft_ms, error_code=error_code)
    except Exception:
        logger.exception("stream_billing_failed", request_id=call.request_id)
