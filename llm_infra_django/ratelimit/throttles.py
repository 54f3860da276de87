"""DRF throttles on the shared limiter; rates come from `LLM_INFRA["THROTTLE_RATES"]`, read on every request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from rest_framework.throttling import BaseThrottle

from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW, TOKEN_BUCKET
from llm_infra_django.ratelimit.headers import apply_headers, attach_decision
from llm_infra_django.ratelimit.identity import (
    api_key_identity,
    caller_identity,
    ip_identity,
    principal_identity,
    tenant_identity,
    user_identity,
)
from llm_infra_django.ratelimit.limiter import Decision, limiter, make_key, rate_for_scope
from llm_infra_django.ratelimit.rates import Rate

if TYPE_CHECKING:
    from rest_framework.views import APIView as _ViewBase
else:
    _ViewBase = object

__all__ = [
    "APIKeyRateThrottle",
    "AnonRateThrottle",
    "RateLimitHeadersMixin",
    "RateLimitThrottle",
    "ScopedRateThrottle",
    "SlidingWindowThrottle",
    "TenantRateThrottle",
    "TokenBucketThrottle",
    "UserRateThrottle",
]


class RateLimitThrottle(BaseThrottle):
    """Base throttle: one overridable method per concern.

    - `get_scope` → names the rate in `THROTTLE_RATES` and prefixes the key (`scope` attribute);
    - `get_rate` → `rate` attribute, else `THROTTLE_RATES[scope]` read now (None = unlimited);
    - `get_identity` → who is limited (None = the throttle does not apply to this request);
    - `get_cost` → units a request consumes; `algorithm` → "token_bucket" or "sliding_window";
    - `fail_open` → what a Redis failure does (None = `THROTTLE_FAIL_OPEN`; False answers 503).

    The decision is attached to the request: `RateLimitHeadersMixin` or `RateLimitMiddleware` turns it into
    `X-RateLimit-*` headers. A denial raises DRF's `Throttled` with the decision's `retry_after`.
    """

    scope: str | None = None
    rate: str | Rate | None = None
    algorithm: str = TOKEN_BUCKET
    fail_open: bool | None = None

    def __init__(self) -> None:
        self.decision: Decision | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        scope = self.get_scope(request, view)
        if scope is None:
            return True
        rate = self.get_rate(request, view, scope)
        if rate is None:
            return True
        identity = self.get_identity(request, view)
        if identity is None:
            return True
        self.decision = limiter.hit(
            make_key(scope, identity),
            rate,
            self.get_cost(request, view),
            self.algorithm,
            fail_open=self.fail_open,
        )
        attach_decision(request, self.decision)
        return self.decision.allowed

    def wait(self) -> float | None:
        return self.decision.retry_after if self.decision is not None else None

    def get_scope(self, request: Any, view: Any) -> str | None:
        if self.scope is None:
            raise ImproperlyConfigured(f"{type(self).__name__} needs a `scope` (a key of LLM_INFRA['THROTTLE_RATES']).")
        return self.scope

    def get_rate(self, request: Any, view: Any, scope: str) -> str | Rate | None:
        return self.rate if self.rate is not None else rate_for_scope(scope)

    def get_identity(self, request: Any, view: Any) -> str | None:
        return principal_identity(request)

    def get_cost(self, request: Any, view: Any) -> int:
        return 1


class TokenBucketThrottle(RateLimitThrottle):
    """Token bucket per principal (API key, else user, else IP): bursts up to the limit, refilled evenly."""

    algorithm = TOKEN_BUCKET


class SlidingWindowThrottle(RateLimitThrottle):
    """Exact sliding window per principal: never more than the limit in any period."""

    algorithm = SLIDING_WINDOW


class ScopedRateThrottle(RateLimitThrottle):
    """Scope from the view's `throttle_scope` (views without one are not limited by it)."""

    def get_scope(self, request: Any, view: Any) -> str | None:
        return getattr(view, "throttle_scope", None)


class TenantRateThrottle(RateLimitThrottle):
    """Per tenant, as named by `LLM_INFRA["TENANT_RESOLVER"]`; requests without a tenant are not limited by it."""

    scope = "tenant"

    def get_identity(self, request: Any, view: Any) -> str | None:
        return tenant_identity(request)


class APIKeyRateThrottle(RateLimitThrottle):
    """Per API key: `request.auth`'s id, else a keyed hash of the Bearer credential (never the secret itself)."""

    scope = "api_key"

    def get_identity(self, request: Any, view: Any) -> str | None:
        return api_key_identity(request)


class UserRateThrottle(RateLimitThrottle):
    """Per signed-in caller (the API key it authenticated with, else its user); anonymous requests are limited per
    client IP (as DRF's `UserRateThrottle`, with keys apart: one may act for no user, or share a user with others)."""

    scope = "user"

    def get_identity(self, request: Any, view: Any) -> str | None:
        return caller_identity(request) or ip_identity(request)


class AnonRateThrottle(RateLimitThrottle):
    """Per client IP for unauthenticated requests only (honours `NUM_PROXIES`)."""

    scope = "anon"

    def get_identity(self, request: Any, view: Any) -> str | None:
        if user_identity(request) is not None or getattr(request, "auth", None) is not None:
            return None
        return ip_identity(request)


class RateLimitHeadersMixin(_ViewBase):
    """Put `class MyView(RateLimitHeadersMixin, APIView)` first to add the `X-RateLimit-*` headers to every
    response of a throttled view, allowed or denied (or install `RateLimitMiddleware`, which does the same)."""

    def finalize_response(self, request: Any, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        return apply_headers(request, response)
