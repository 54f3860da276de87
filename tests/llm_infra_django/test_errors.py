"""Every error class through DRF and plain Django views (sync and async): status, envelope, headers, request id."""

from __future__ import annotations

import pytest
from django.test import AsyncClient, Client

from llm_infra_django import errors
from llm_infra_django.errors import openai_error_body

EXPECTED = {
    "validation": (400, "validation_error"),
    "authentication": (401, "authentication_error"),
    "authorization": (403, "authorization_error"),
    "policy": (403, "policy_violation"),
    "not_found": (404, "not_found"),
    "conflict": (409, "conflict"),
    "business_rule": (422, "business_rule_error"),
    "quota": (402, "quota_exceeded"),
    "rate_limit": (429, "rate_limit_exceeded"),
    "internal": (500, "internal_error"),
    "database": (500, "database_error"),
    "cache": (500, "cache_error"),
    "configuration": (500, "configuration_error"),
    "external": (502, "external_service_error"),
    "unavailable": (503, "service_unavailable"),
    "circuit_open": (503, "service_unavailable"),
    "timeout": (504, "timeout"),
    "django_404": (404, "not_found"),
    "django_permission": (403, "authorization_error"),
    "django_validation": (400, "validation_error"),
    "drf_not_authenticated": (401, "authentication_error"),
    "drf_permission": (403, "authorization_error"),
    "drf_not_found": (404, "not_found"),
    "drf_throttled": (429, "rate_limit_exceeded"),
    "drf_method": (405, "method_not_allowed"),
    "drf_parse": (400, "parse_error"),
    "bug": (500, "internal_error"),
}
RETRY_AFTER = {"rate_limit": "3", "unavailable": "7", "circuit_open": "13", "drf_throttled": "3"}


def _assert_envelope(response, name: str, request_id: str) -> None:
    status, code = EXPECTED[name]
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["request_id"] == request_id
    assert response["X-Request-ID"] == request_id
    if name in RETRY_AFTER:
        assert response["Retry-After"] == RETRY_AFTER[name]
    else:
        assert "Retry-After" not in response


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("kind", ["plain", "drf"])
def test_every_error_renders_the_envelope(name: str, kind: str) -> None:
    # given a client with its own request id
    client = Client(raise_request_exception=False)

    # when the view raises the error
    response = client.get(f"/{kind}/raise/{name}", HTTP_X_REQUEST_ID=f"req-{kind}-{name}")

    # then the envelope carries status, code, request id and Retry-After where due
    _assert_envelope(response, name, f"req-{kind}-{name}")


@pytest.mark.parametrize("name", ["not_found", "rate_limit", "circuit_open", "bug", "django_validation"])
async def test_async_views_render_the_envelope(name: str) -> None:
    client = AsyncClient(raise_request_exception=False)
    response = await client.get(f"/async/raise/{name}", headers={"X-Request-ID": f"async-{name}"})
    _assert_envelope(response, name, f"async-{name}")


@pytest.mark.parametrize("kind", ["plain", "drf"])
def test_unhandled_exception_gives_500_without_internals(kind: str) -> None:
    response = Client(raise_request_exception=False).get(f"/{kind}/raise/bug")
    assert response.status_code == 500
    text = response.content.decode()
    for leak in ("ZeroDivisionError", "Traceback", "/etc/passwd", "secret internals", "views.py"):
        assert leak not in text
    assert response.json()["error"]["message"] == "An internal error occurred."


def test_details_carry_the_domain_data() -> None:
    client = Client(raise_request_exception=False)
    quota = client.get("/plain/raise/quota").json()["error"]["details"]
    assert quota == {"quota": "api_requests", "limit": "10", "used": "10", "resets_at": "2026-12-01T00:00:00+00:00"}
    policy = client.get("/drf/raise/policy").json()["error"]["details"]
    assert policy == {"violations": [{"rule": "residency", "severity": "high"}]}
    django_validation = client.get("/plain/raise/django_validation").json()["error"]
    assert django_validation["details"] == {"fields": {"slug": ["Enter a valid slug."]}}
    assert "slug" in django_validation["message"]


def test_the_upstream_timeout_leaves_the_builtin_timeout_error_alone() -> None:
    # given the error model's names
    names = set(errors.__all__) | set(vars(errors))

    # then none of them hides the builtin, and the 504 says what timed out
    assert "TimeoutError" not in names
    assert errors.UpstreamTimeoutError.status_code == 504
    assert errors.UpstreamTimeoutError(service="shield").as_dict()["code"] == "timeout"


def test_drf_validation_names_each_field() -> None:
    response = Client().post("/drf/validate", {"name": "x" * 20, "count": 0}, content_type="application/json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) == {"name", "count"}
    assert "name" in error["message"]


def test_unknown_route_is_an_envelope_for_api_clients_and_a_page_for_browsers() -> None:
    client = Client()
    api = client.get("/no/such/route", HTTP_ACCEPT="application/json")
    assert api.status_code == 404
    assert api.json()["error"]["code"] == "not_found"
    assert api.json()["request_id"] == api["X-Request-ID"]
    browser = client.get("/no/such/route", HTTP_ACCEPT="text/html,application/xhtml+xml")
    assert browser.status_code == 404
    assert browser["Content-Type"].startswith("text/html")


def test_request_id_is_generated_when_missing_or_malformed() -> None:
    client = Client()
    generated = client.get("/plain/ok")["X-Request-ID"]
    assert len(generated) == 32
    malformed = client.get("/plain/ok", HTTP_X_REQUEST_ID="bad id\nwith newline")["X-Request-ID"]
    assert malformed != "bad id\nwith newline" and len(malformed) == 32


@pytest.mark.parametrize(
    ("error", "status", "openai_type"),
    [
        (errors.ValidationError(fields={"model": ["required"]}), 400, "invalid_request_error"),
        (errors.AuthenticationError(), 401, "authentication_error"),
        (errors.QuotaExceededError(quota="budget", limit=1, used=1), 402, "insufficient_quota"),
        (errors.AuthorizationError(), 403, "permission_error"),
        (errors.NotFoundError("Model", "x/y"), 404, "not_found_error"),
        (errors.RateLimitError(retry_after=1), 429, "rate_limit_error"),
        (errors.ExternalServiceError(service="up"), 502, "api_error"),
        (errors.CircuitOpenError("up", retry_after=3), 503, "api_error"),
    ],
)
def test_openai_shape(error: errors.AppError, status: int, openai_type: str) -> None:
    body = openai_error_body(error)
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["type"] == openai_type
    assert error.status_code == status
    if isinstance(error, errors.ValidationError):
        assert body["error"]["param"] == "model"
