"""Request context (request id, tenant, user, one `request_finished` line), the error envelope and the security
headers middleware."""

from __future__ import annotations

import functools
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import structlog
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.signals import setting_changed
from django.http import Http404, HttpRequest, HttpResponseBase
from django.utils.functional import empty

from llm_infra_django.conf import infra_settings
from llm_infra_django.logging import log_response
from llm_infra_django.metrics import observe_request
from llm_infra_django.responses import error_response, unhandled_error, wants_html

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

logger = structlog.get_logger("llm_infra.middleware")


class RequestWithId(HttpRequest):
    """The type of a request `RequestContextMiddleware` has seen: it carries the request's id."""

    request_id: str


def _header_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def incoming_request_id(request: HttpRequest) -> str:
    """The client's request id when it is well formed, else a new one."""
    supplied = request.META.get(_header_key(infra_settings.REQUEST_ID_HEADER), "")
    return supplied if _REQUEST_ID_RE.match(supplied) else uuid.uuid4().hex


def resolved_user_id(request: HttpRequest) -> str | None:
    """The id of the user already authenticated for this request; never triggers authentication itself."""
    user = getattr(request, "user", None)
    wrapped = getattr(user, "_wrapped", None)
    if user is None or wrapped is empty:
        return None
    target = wrapped if wrapped is not None else user
    if not getattr(target, "is_authenticated", False):
        return None
    return str(target.pk)


def resolved_tenant(request: HttpRequest) -> str | None:
    resolver = infra_settings.TENANT_RESOLVER
    if resolver is None:
        return None
    try:
        tenant = resolver(request)
    except Exception:
        logger.warning("tenant_resolver_failed", exc_info=True)
        return None
    return str(tenant) if tenant is not None else None


def request_route(request: HttpRequest) -> str | None:
    match = getattr(request, "resolver_match", None)
    return match.route if match is not None else None


class RequestContextMiddleware:
    """Bind `request_id` (echoed in the response header) for the whole request and log one `request_finished`.

    Place it first in `MIDDLEWARE`. Works for sync and async stacks without a thread hop.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        started = self._start(request)
        try:
            response = self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            structlog.contextvars.clear_contextvars()

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        started = self._start(request)
        try:
            response = await self.get_response(request)
            self._finish(request, response, started)
            return response
        finally:
            structlog.contextvars.clear_contextvars()

    @staticmethod
    def _start(request: HttpRequest) -> float:
        structlog.contextvars.clear_contextvars()
        request_id = incoming_request_id(request)
        cast(RequestWithId, request).request_id = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        return time.perf_counter()

    @staticmethod
    def _finish(request: HttpRequest, response: HttpResponseBase, started: float) -> None:
        response[infra_settings.REQUEST_ID_HEADER] = cast(RequestWithId, request).request_id
        context = structlog.contextvars.get_contextvars()
        tenant = context.get("tenant") or resolved_tenant(request)
        user = context.get("user") or resolved_user_id(request)
        structlog.contextvars.bind_contextvars(**{k: v for k, v in (("tenant", tenant), ("user", user)) if v})
        elapsed = time.perf_counter() - started
        route = request_route(request)
        log_response(
            method=request.method or "",
            path=request.path,
            route=route,
            status=response.status_code,
            duration_ms=elapsed * 1000,
        )
        observe_request(request.method or "", route, response.status_code, elapsed)


class ErrorEnvelopeMiddleware:
    """Render exceptions raised by views as the error envelope (unknown ones as a 500 without internals)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponseBase | None:
        if isinstance(exception, (Http404, PermissionDenied)) and wants_html(request):
            return None  # Django's handler404/handler403 render the page a browser expects
        response = error_response(exception, request)
        return response if response is not None else unhandled_error(exception, request)


# The settings `security_headers()` reads: those of Django's SecurityMiddleware and XFrameOptionsMiddleware.
SECURITY_SETTINGS = frozenset(
    {
        "SECURE_CONTENT_TYPE_NOSNIFF",
        "SECURE_REFERRER_POLICY",
        "SECURE_CROSS_ORIGIN_OPENER_POLICY",
        "X_FRAME_OPTIONS",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
    }
)


@functools.cache
def security_headers() -> tuple[tuple[tuple[str, str], ...], str | None]:
    """The headers every response gets, and the `Strict-Transport-Security` value for secure requests (None: none),
    as Django's `SecurityMiddleware` and `XFrameOptionsMiddleware` set them; computed once per settings change."""
    headers = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("X-Content-Type-Options", "nosniff"))
    policy = settings.SECURE_REFERRER_POLICY
    if policy:
        values = [v.strip() for v in policy.split(",")] if isinstance(policy, str) else policy
        headers.append(("Referrer-Policy", ",".join(values)))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("Cross-Origin-Opener-Policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("X-Frame-Options", settings.X_FRAME_OPTIONS.upper()))
    hsts = None
    if settings.SECURE_HSTS_SECONDS:
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        hsts += "; includeSubDomains" if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS else ""
        hsts += "; preload" if settings.SECURE_HSTS_PRELOAD else ""
    return tuple(headers), hsts


def _security_settings_changed(*, setting: str, **kwargs: Any) -> None:
    if setting in SECURITY_SETTINGS:
        security_headers.cache_clear()


setting_changed.connect(_security_settings_changed, dispatch_uid="llm_infra_django.middleware.security_headers")


class SecurityHeadersMiddleware:
    """The response headers of Django's `SecurityMiddleware` and `XFrameOptionsMiddleware` (nosniff, referrer and
    opener policies, frame options; HSTS on secure requests, behind a TLS proxy too) for a lean handler.

    Those two are `MiddlewareMixin` classes, which under ASGI call their hooks through a thread; this one only adds
    headers computed once per settings change. No HTTPS redirect: an API client is refused, not redirected.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        return self._add_headers(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        return self._add_headers(request, await self.get_response(request))

    @staticmethod
    def _add_headers(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        headers, hsts = security_headers()
        for name, value in headers:
            response.headers.setdefault(name, value)
        if hsts is not None and request.is_secure():
            response.headers.setdefault("Strict-Transport-Security", hsts)
        return response
