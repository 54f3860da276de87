"""Views used by the infra tests: each raises the exception named in the URL."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import structlog
from django.core import exceptions as django_exceptions
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions as drf_exceptions
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from llm_infra_django import errors


def _bug() -> Exception:
    return ZeroDivisionError("secret internals: /etc/passwd line 42")


RAISERS = {
    "validation": lambda: errors.ValidationError(fields={"name": ["This field is required."]}),
    "authentication": lambda: errors.AuthenticationError(),
    "authorization": lambda: errors.AuthorizationError(),
    "policy": lambda: errors.PolicyViolationError(violations=[{"rule": "residency", "severity": "high"}]),
    "not_found": lambda: errors.NotFoundError("Service", "abc"),
    "conflict": lambda: errors.ConflictError(),
    "business_rule": lambda: errors.BusinessRuleError(),
    "quota": lambda: errors.QuotaExceededError(
        quota="api_requests", limit=10, used=10, resets_at=datetime(2026, 12, 1, tzinfo=UTC)
    ),
    "rate_limit": lambda: errors.RateLimitError(retry_after=2.2),
    "internal": lambda: errors.InternalError(),
    "database": lambda: errors.DatabaseError(),
    "cache": lambda: errors.CacheError(),
    "configuration": lambda: errors.ConfigurationError(),
    "external": lambda: errors.ExternalServiceError(service="registry"),
    "unavailable": lambda: errors.ServiceUnavailableError(retry_after=7),
    "circuit_open": lambda: errors.CircuitOpenError("upstream:1", retry_after=12.5),
    "timeout": lambda: errors.UpstreamTimeoutError(service="shield"),
    "django_404": lambda: Http404("no such thing"),
    "django_permission": lambda: django_exceptions.PermissionDenied(),
    "django_validation": lambda: django_exceptions.ValidationError({"slug": ["Enter a valid slug."]}),
    "drf_not_authenticated": lambda: drf_exceptions.NotAuthenticated(),
    "drf_permission": lambda: drf_exceptions.PermissionDenied(),
    "drf_not_found": lambda: drf_exceptions.NotFound(),
    "drf_throttled": lambda: drf_exceptions.Throttled(wait=3),
    "drf_method": lambda: drf_exceptions.MethodNotAllowed("PATCH"),
    "drf_parse": lambda: drf_exceptions.ParseError(),
    "bug": _bug,
}


def plain_raise(request: HttpRequest, name: str) -> HttpResponse:
    raise RAISERS[name]()


def plain_ok(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


async def async_raise(request: HttpRequest, name: str) -> HttpResponse:
    raise RAISERS[name]()


async def async_ok(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


class DrfRaiseView(APIView):
    def get(self, request: object, name: str) -> Response:
        raise RAISERS[name]()


class _ItemSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=10)
    count = serializers.IntegerField(min_value=1)


class DrfValidateView(APIView):
    def post(self, request: object) -> Response:
        serializer = _ItemSerializer(data=request.data)  # type: ignore[attr-defined]
        serializer.is_valid(raise_exception=True)
        return Response(serializer.validated_data, status=201)


@csrf_exempt
def log_secrets(request: HttpRequest) -> HttpResponse:
    """Log the request the careless way a view might, then fail with the token in the message."""
    body = json.loads(request.body or b"{}")
    log = structlog.get_logger("tests.careless")
    log.info("incoming", headers=dict(request.headers), body=body, cookies=request.COOKIES)
    logging.getLogger("tests.careless.stdlib").warning(
        "auth header was %s and body %s", request.headers.get("Authorization"), body
    )
    raise ValueError(f"failed while using {request.headers.get('Authorization')} for {body.get('api_key')}")
