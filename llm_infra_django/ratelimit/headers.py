"""Carry a request's rate-limit decision to its response headers (a throttle cannot set headers itself)."""

from __future__ import annotations

from typing import Any

from llm_infra_django.ratelimit.limiter import Decision

# Attribute of the Django `HttpRequest` (a DRF `Request`'s `_request`) holding the decision the headers describe.
DECISION_ATTR = "llm_infra_ratelimit"


def _django_request(request: Any) -> Any:
    return getattr(request, "_request", request)


def _tighter(current: Decision, new: Decision) -> Decision:
    """Of two limits applied to one request, the one the client should be told about."""
    if current.allowed != new.allowed:
        return new if not new.allowed else current
    if not new.allowed:
        return new if (new.retry_after or 0) > (current.retry_after or 0) else current
    if current.error != new.error:
        return current if new.error else new
    return new if new.remaining < current.remaining else current


def attach_decision(request: Any, decision: Decision) -> None:
    """Record `decision` on the request (DRF or Django); with several limits, the tightest one is kept."""
    target = _django_request(request)
    current: Decision | None = getattr(target, DECISION_ATTR, None)
    setattr(target, DECISION_ATTR, decision if current is None else _tighter(current, decision))


def get_decision(request: Any) -> Decision | None:
    return getattr(_django_request(request), DECISION_ATTR, None)


def apply_headers(request: Any, response: Any) -> Any:
    """Set the `X-RateLimit-*` headers (and `Retry-After` on a denial) of the request's decision, if any."""
    decision = get_decision(request)
    if decision is not None:
        for name, value in decision.headers().items():
            response[name] = value
    return response
