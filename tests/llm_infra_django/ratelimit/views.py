"""Views under test: DRF views with each throttle, plain sync/async views with `@ratelimit`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW
from llm_infra_django.ratelimit.decorators import ratelimit
from llm_infra_django.ratelimit.throttles import (
    AnonRateThrottle,
    APIKeyRateThrottle,
    RateLimitHeadersMixin,
    ScopedRateThrottle,
    SlidingWindowThrottle,
    TenantRateThrottle,
    TokenBucketThrottle,
    UserRateThrottle,
)


class HeaderUserAuthentication(BaseAuthentication):
    """`X-Test-User: <id>` authenticates as that user; `X-Test-Key: <id>` as an API key object with that id."""

    def authenticate(self, request: Any) -> tuple[Any, Any] | None:
        user_id = request.headers.get("X-Test-User")
        key_id = request.headers.get("X-Test-Key")
        if not user_id and not key_id:
            return None
        user = SimpleNamespace(pk=user_id or "key-owner", is_authenticated=True)
        return user, SimpleNamespace(id=key_id) if key_id else None


def tenant_from_header(request: Any) -> str | None:
    """The TENANT_RESOLVER of the tests: the `X-Tenant` header."""
    return request.headers.get("X-Tenant")


class BucketThrottle(TokenBucketThrottle):
    scope = "bucket"


class WindowThrottle(SlidingWindowThrottle):
    scope = "window"


class FailClosedThrottle(TokenBucketThrottle):
    scope = "bucket"
    fail_open = False


class _Ok(APIView):
    authentication_classes = [HeaderUserAuthentication]

    def get(self, request: Any) -> Response:
        return Response({"ok": True})


class BucketView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [BucketThrottle]


class BucketNoMixinView(_Ok):
    throttle_classes = [BucketThrottle]


class WindowView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [WindowThrottle]


class FailClosedView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [FailClosedThrottle]


class ScopedView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "scoped"


class UnscopedView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [ScopedRateThrottle]


class TenantView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [TenantRateThrottle]


class APIKeyView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [APIKeyRateThrottle]


class UserView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [UserRateThrottle]


class AnonView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [AnonRateThrottle]


class TwoLimitsView(RateLimitHeadersMixin, _Ok):
    throttle_classes = [BucketThrottle, WindowThrottle]


@ratelimit(scope="plain", rate="2/min")
def plain_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@ratelimit(scope="plain", rate="2/min", algorithm=SLIDING_WINDOW)
async def async_plain_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@ratelimit(scope="plain_from_settings", key="header:X-Client")
def header_keyed_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@ratelimit(scope="plain", rate="5/min", fail_open=False)
async def async_fail_closed_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


def unlimited_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def async_unlimited_view(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})
