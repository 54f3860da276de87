"""URLs, views, a header-based stand-in for authentication and a tenant resolver for the tracing tests."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from llm_infra_django.tracing import http_client_span, inject_trace_headers


@dataclass(frozen=True)
class HeaderUser:
    pk: str
    is_authenticated: bool = True


class HeaderUserMiddleware:
    """Authenticate the user named by `X-User` (tests only)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "X-User" in request.headers:
            request.user = HeaderUser(pk=request.headers["X-User"])  # type: ignore[assignment]
        return self.get_response(request)


def tenant_from_header(request: HttpRequest) -> str | None:
    """`TENANT_RESOLVER` for the tests: the tenant named by `X-Tenant`."""
    return request.headers.get("X-Tenant")


def thing(request: HttpRequest, pk: int) -> JsonResponse:
    return JsonResponse({"pk": pk})


def upstream(request: HttpRequest) -> JsonResponse:
    """Call the URL in `?url=` the way an upstream client does: in a CLIENT span, with trace headers."""
    url = request.GET["url"]
    with http_client_span("registry", "GET", url) as current:
        response = httpx.get(url, headers=inject_trace_headers({}), timeout=5)
        current.set_attribute("http.response.status_code", response.status_code)
    return JsonResponse({"upstream_status": response.status_code})


urlpatterns = [
    path("things/<int:pk>", thing),
    path("upstream", upstream),
]
