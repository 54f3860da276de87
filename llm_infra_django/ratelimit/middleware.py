"""`RateLimitMiddleware`: `X-RateLimit-*` headers from any decision attached to a request, and path-prefix limits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from llm_infra_django.ratelimit.decorators import RequestLimit
from llm_infra_django.ratelimit.headers import apply_headers


class RateLimitMiddleware:
    """Adds the `X-RateLimit-*` headers of the decision a throttle, `@ratelimit` or a path limit attached to the
    request, to the response (allowed or denied). Sync and async without a thread hop.

    Path limits: subclass and set `path_limits = [("/api/", RequestLimit(scope="api", key="ip")), ...]`; every
    limit whose prefix matches the path applies, in order, until one denies (429 envelope). Place the middleware
    after `RequestContextMiddleware`, and after `AuthenticationMiddleware` when a limit keys on the user.
    """

    sync_capable = True
    async_capable = True
    path_limits: Sequence[tuple[str, RequestLimit]] = ()

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        for limit in self.limits_for(request):
            denied = limit.check(request)
            if denied is not None:
                return denied
        return apply_headers(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        for limit in self.limits_for(request):
            denied = await limit.acheck(request)
            if denied is not None:
                return denied
        return apply_headers(request, await self.get_response(request))

    def limits_for(self, request: HttpRequest) -> list[RequestLimit]:
        """The limits applying to this request's path (override to choose them another way)."""
        return [limit for prefix, limit in self.path_limits if request.path.startswith(prefix)]
