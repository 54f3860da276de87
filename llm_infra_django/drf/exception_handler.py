"""DRF exception handler: every exception, ours, Django's or DRF's, becomes the one error envelope."""

from __future__ import annotations

from typing import Any

from rest_framework.response import Response
from rest_framework.views import set_rollback

from llm_infra_django.errors import InternalError, envelope, to_app_error
from llm_infra_django.responses import logger, request_id_of


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """Map `exc` to an `AppError` (unknown → 500 logged with its stack) and render the envelope."""
    request = context.get("request")
    django_request = getattr(request, "_request", request)
    error = to_app_error(exc)
    if error is None:
        logger.error("unhandled_exception", exc_type=type(exc).__name__, exc_info=exc)
        error = InternalError()
    elif error.status_code >= 500:
        logger.error("request_failed", code=error.code, error=error.message, exc_info=exc)
    set_rollback()
    headers = dict(error.headers())
    auth_header = getattr(exc, "auth_header", None)
    if error.status_code == 401:
        view = context.get("view")
        authenticate_header = view.get_authenticate_header(request) if view is not None and request else None
        headers["WWW-Authenticate"] = auth_header or authenticate_header or "Bearer"
    return Response(envelope(error, request_id_of(django_request)), status=error.status_code, headers=headers)
