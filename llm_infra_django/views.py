"""Error handlers for `handler400/403/404/500`: the envelope for API clients, Django's pages for browsers."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views import defaults

from llm_infra_django.errors import AppError, AuthorizationError, InternalError, NotFoundError
from llm_infra_django.responses import envelope_response, wants_html


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if wants_html(request):
        return defaults.page_not_found(request, exception)
    return envelope_response(NotFoundError(message=f"No route for {request.path}."), request)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_html(request):
        return defaults.permission_denied(request, exception)
    return envelope_response(AuthorizationError(), request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if wants_html(request):
        return defaults.bad_request(request, exception)
    return envelope_response(AppError("Bad request.", status_code=400, code="bad_request"), request)


def server_error(request: HttpRequest) -> HttpResponse:
    if wants_html(request):
        return defaults.server_error(request)
    return envelope_response(InternalError(), request)
