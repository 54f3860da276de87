"""Falling back to the next offer: a call whose upstream failed in a way another offer may not — no connection, a
timeout, a 5xx, a 429, an open circuit — before anything reached the client is tried at the next route of its plan
(see routing.plan_routes); the failed attempt is recorded on its own (see recording.record_attempt). Other errors
(the upstream refusing the request itself) are the call's answer."""

from __future__ import annotations

from apps.consumption.call import Call
from apps.consumption.health import health_cache
from apps.consumption.recording import record_attempt
from apps.consumption.upstream import UpstreamStatusError
from llm_infra_django.errors import CircuitOpenError, ExternalServiceError, UpstreamTimeoutError


def retriable(exc: Exception) -> bool:
    """Whether another offer may succeed where this one failed."""
    if isinstance(exc, UpstreamStatusError):
        return exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, (ExternalServiceError, UpstreamTimeoutError, CircuitOpenError))


async def next_offer(call: Call, exc: Exception) -> bool:
    """Record the failed attempt and move the call to its next route; False when there is none to try (or the
    failure is not one to fall back on): the caller answers with the error."""
    if not retriable(exc) or call.attempts + 1 >= len(call.candidates):
        return False
    assert call.route is not None
    if isinstance(exc, CircuitOpenError):
        health_cache.saw_open(call.route.version_id)
    await record_attempt(call, exc)
    call.attempts += 1
    call.route = call.candidates[call.attempts]
    return True
