"""`@ratelimit` for plain Django views (sync and async) and the `RequestLimit` it shares with the middleware."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from llm_infra_django.errors import RateLimitError, ServiceUnavailableError
from llm_infra_django.ratelimit.algorithms import ALGORITHMS, TOKEN_BUCKET
from llm_infra_django.ratelimit.headers import apply_headers, attach_decision
from llm_infra_django.ratelimit.identity import KeySpec, check_key_spec, resolve_identity
from llm_infra_django.ratelimit.limiter import Decision, limiter, make_key, rate_for_scope
from llm_infra_django.ratelimit.rates import Rate, parse_rate
from llm_infra_django.responses import envelope_response

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class RequestLimit:
    """One limit on Django requests: `scope` names the rate (`rate`, else `THROTTLE_RATES[scope]` read per request)
    and prefixes the key; `key` says whose requests share it (see `identity.resolve_identity`)."""

    scope: str
    rate: str | Rate | None = None
    key: KeySpec = "ip"
    algorithm: str = TOKEN_BUCKET
    cost: int = 1
    fail_open: bool | None = None

    def __post_init__(self) -> None:
        check_key_spec(self.key)
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"unknown rate limit algorithm {self.algorithm!r}; use one of {', '.join(ALGORITHMS)}")
        if self.rate is not None:
            parse_rate(self.rate)

    def check(self, request: HttpRequest) -> HttpResponseBase | None:
        """None when the request may proceed, else the 429 (or fail-closed 503) envelope response to send."""
        target = self._target(request)
        if target is None:
            return None
        key, rate = target
        try:
            decision = limiter.hit(key, rate, self.cost, self.algorithm, fail_open=self.fail_open)
        except ServiceUnavailableError as exc:
            return envelope_response(exc, request)
        return self._respond(request, decision)

    async def acheck(self, request: HttpRequest) -> HttpResponseBase | None:
        """`check` for async views and middleware, without a thread hop."""
        target = self._target(request)
        if target is None:
            return None
        key, rate = target
        try:
            decision = await limiter.ahit(key, rate, self.cost, self.algorithm, fail_open=self.fail_open)
        except ServiceUnavailableError as exc:
            return envelope_response(exc, request)
        return self._respond(request, decision)

    def _target(self, request: HttpRequest) -> tuple[str, str | Rate] | None:
        rate = self.rate if self.rate is not None else rate_for_scope(self.scope)
        if rate is None:
            return None
        identity = resolve_identity(request, self.key)
        if identity is None:
            return None
        return make_key(self.scope, identity), rate

    @staticmethod
    def _respond(request: HttpRequest, decision: Decision) -> HttpResponseBase | None:
        attach_decision(request, decision)
        if decision.allowed:
            return None
        return apply_headers(request, envelope_response(RateLimitError(retry_after=decision.retry_after), request))


def ratelimit(
    *,
    scope: str,
    rate: str | Rate | None = None,
    key: KeySpec = "ip",
    algorithm: str = TOKEN_BUCKET,
    cost: int = 1,
    fail_open: bool | None = None,
) -> Callable[[View], View]:
    """Limit a plain Django view (sync or async); denied requests get the 429 envelope with `Retry-After`, and
    every limited response carries the `X-RateLimit-*` headers.

    `key`: "ip" (default), "user", "tenant", "api_key", "principal", "header:<Name>" or a callable(request).
    """
    limit = RequestLimit(scope=scope, rate=rate, key=key, algorithm=algorithm, cost=cost, fail_open=fail_open)

    def decorator(view: View) -> View:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
                denied = await limit.acheck(request)
                if denied is not None:
                    return denied
                return apply_headers(request, await view(request, *args, **kwargs))

            return async_view  # type: ignore[return-value]

        @functools.wraps(view)
        def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            denied = limit.check(request)
            if denied is not None:
                return denied
            return apply_headers(request, view(request, *args, **kwargs))

        return sync_view  # type: ignore[return-value]

    return decorator
