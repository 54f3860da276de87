"""Logging: request ids, one `request_finished` line per request, and no secret in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
import structlog
from django.test import AsyncClient, Client, RequestFactory, override_settings
from rest_framework.request import Request

from llm_infra_django.logging import (
    StructlogFormatter,
    log_audit,
    log_auth,
    log_cache,
    log_external_call,
    log_metric,
    log_request,
    redact,
    redact_text,
)


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Point every handler that uses our formatter at a buffer: the real rendered output, not log records."""
    buffer = io.StringIO()
    swapped = []
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and isinstance(handler.formatter, StructlogFormatter):
                swapped.append((handler, handler.setStream(buffer)))
    assert swapped, "no handler uses StructlogFormatter: LOGGING is not the package's logging_config()"
    yield buffer
    for handler, stream in swapped:
        handler.setStream(stream)


def json_lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_request_id_generated_echoed_and_on_the_finished_line(log_output: io.StringIO) -> None:
    # when a request arrives without a request id
    response = Client().get("/plain/ok")

    # then one is generated, echoed, and logged on exactly one request_finished line
    request_id = response["X-Request-ID"]
    finished = [line for line in json_lines(log_output) if line["event"] == "request_finished"]
    assert len(finished) == 1
    line = finished[0]
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["path"] == "/plain/ok"
    assert line["route"] == "plain/ok"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "info"


def test_supplied_request_id_is_kept_and_route_is_the_template(log_output: io.StringIO) -> None:
    Client(raise_request_exception=False).get("/plain/raise/not_found", HTTP_X_REQUEST_ID="client-chosen-1")
    lines = json_lines(log_output)
    finished = [line for line in lines if line["event"] == "request_finished"]
    assert [line["request_id"] for line in finished] == ["client-chosen-1"]
    assert finished[0]["route"] == "plain/raise/<str:name>"
    assert finished[0]["status"] == 404


async def test_async_views_log_one_finished_line(log_output: io.StringIO) -> None:
    response = await AsyncClient().get("/async/ok")
    finished = [line for line in json_lines(log_output) if line["event"] == "request_finished"]
    assert len(finished) == 1
    assert finished[0]["request_id"] == response["X-Request-ID"]


def test_context_is_cleared_after_the_request(log_output: io.StringIO) -> None:
    Client().get("/plain/ok", HTTP_X_REQUEST_ID="first-request")
    structlog.get_logger("tests").info("after_request")
    after = [line for line in json_lines(log_output) if line["event"] == "after_request"]
    assert "request_id" not in after[0]


SECRETS = {
    "bearer": "sk-live-0123456789abcdefghijklmnop",
    "api_key": "mk_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
    "password": "hunter2-correct-horse",
    "cookie": "s3ss10nv4lue0123456789",
    "nested_token": "nested-token-value-42",
}


@pytest.mark.parametrize("log_json", [True, False], ids=["json", "console"])
def test_no_secret_reaches_any_log_line(log_output: io.StringIO, log_json: bool) -> None:
    # given a request carrying secrets in headers, cookies and body, to a view that logs carelessly and fails
    client = Client(raise_request_exception=False)
    client.cookies["sessionid"] = SECRETS["cookie"]
    body = {
        "api_key": SECRETS["api_key"],
        "password": SECRETS["password"],
        "options": {"deep": [{"token": SECRETS["nested_token"]}]},
    }

    # when it is served
    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}, "LOG_JSON": log_json}):
        response = client.post(
            "/secrets", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {SECRETS['bearer']}"
        )

    # then the request failed and was logged (with a traceback), yet no secret appears anywhere
    assert response.status_code == 500
    output = log_output.getvalue()
    assert "request_finished" in output
    assert "unhandled_exception" in output
    assert "Traceback" in output
    assert "[REDACTED]" in output
    for name, secret in SECRETS.items():
        assert secret not in output, f"{name} leaked into the logs"


def test_typed_helpers_write_structured_lines(log_output: io.StringIO) -> None:
    log_request(method="GET", path="/x", headers={"Authorization": "Bearer abcdefghijklmnop", "Accept": "*/*"})
    log_external_call(service="registry", operation="lookup", duration_ms=12.5, outcome="success", status=200)
    log_cache(operation="get", key="k", error="ConnectionError")
    log_auth(outcome="failure", method="api_key", reason="revoked")
    log_audit(action="api_key_revoked", actor="1", resource="api_key", resource_id="k1", tenant="acme")
    log_metric(name="tokens", value=12, unit="token", model="echo")
    lines = {line["event"]: line for line in json_lines(log_output)}
    assert lines["request_started"]["headers"] == {"Authorization": "[REDACTED]", "Accept": "*/*"}
    assert lines["external_call"]["service"] == "registry" and lines["external_call"]["status"] == 200
    assert lines["cache_operation"]["level"] == "warning"
    assert lines["auth"]["reason"] == "revoked"
    assert lines["audit"]["action"] == "api_key_revoked"
    assert lines["metric"]["value"] == 12


def test_stdlib_and_django_loggers_use_the_same_format(log_output: io.StringIO) -> None:
    logging.getLogger("django.request").warning("Not Found: %s", "/x?api_key=abc123secret")
    line = json_lines(log_output)[-1]
    assert line["logger"] == "django.request"
    assert "abc123secret" not in line["event"]
    assert "timestamp" in line


API_KEY = "mk_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2H1g0F9e"
URL_SECRETS = {
    "api_key": API_KEY,
    "password": "swordfish-in-a-url",
    "key": "AIzaSyUrl0123456789",
    "sig": "sv2024signature0123",
    "code": "oauth-grant-0123456789",
}


def _secret_url(path: str) -> str:
    return f"{path}?{urlencode({'page': 2, **URL_SECRETS, 'model': 'echo'})}"


def _assert_no_url_secret(output: str) -> None:
    for name, secret in URL_SECRETS.items():
        assert secret not in output, f"{name} from the URL leaked into the logs"


@pytest.mark.parametrize("log_json", [True, False], ids=["json", "console"])
def test_django_request_warnings_show_the_request_without_url_secrets(log_output: io.StringIO, log_json: bool) -> None:
    # given a URL carrying secrets in its query, to a view answering 404 (Django logs it with the request object)
    url = _secret_url("/plain/raise/not_found")

    # when it is served
    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}, "LOG_JSON": log_json}):
        assert Client().get(url).status_code == 404

    # then the warning shows method and path with every secret parameter redacted, the others kept
    output = log_output.getvalue()
    _assert_no_url_secret(output)
    expected = "GET /plain/raise/not_found?page=2&api_key=[REDACTED]&password=[REDACTED]&key=[REDACTED]"
    expected += "&sig=[REDACTED]&code=[REDACTED]&model=echo"
    if log_json:
        warning = next(line for line in json_lines(log_output) if line["logger"] == "django.request")
        assert warning["request"] == expected
    else:
        assert expected in output


async def test_asgi_request_warnings_show_the_request_without_url_secrets(log_output: io.StringIO) -> None:
    # when an async view answers 404 to a URL carrying secrets (an ASGIRequest on the warning)
    response = await AsyncClient().get(_secret_url("/async/raise/not_found"))

    # then nothing of them is logged
    assert response.status_code == 404
    warning = next(line for line in json_lines(log_output) if line["logger"] == "django.request")
    assert warning["request"].startswith("GET /async/raise/not_found?page=2&api_key=[REDACTED]&")
    _assert_no_url_secret(log_output.getvalue())


def test_an_api_key_in_the_path_is_redacted_on_every_line(log_output: io.StringIO) -> None:
    # when a path carries an API key inside a segment
    Client().get(f"/missing/x_{API_KEY}")

    # then neither the request_finished line nor Django's warning shows it
    finished = next(line for line in json_lines(log_output) if line["event"] == "request_finished")
    assert finished["path"] == "/missing/x_[REDACTED]"
    assert API_KEY not in log_output.getvalue()


@pytest.mark.parametrize(
    "name",
    [
        "api_key",
        "Api-Key",
        "api%5Fkey",
        "key",
        "token",
        "access_token",
        "id_token",
        "password",
        "pwd",
        "secret",
        "client_secret",
        "signature",
        "X-Amz-Signature",
        "sig",
        "auth",
        "code",
        "sessionid",
    ],
)
def test_secret_query_parameters_are_redacted_in_any_text(name: str) -> None:
    text = f"GET https://upstream.example/cb?{name}=s3cr3t-value&page=2&{name}=again#top"
    expected = f"GET https://upstream.example/cb?{name}=[REDACTED]&page=2&{name}=[REDACTED]#top"
    assert redact_text(text) == expected


def test_harmless_query_parameters_are_kept() -> None:
    text = "/api/v1/services/?page=2&ordering=-created&search=keyboard&tags=a,b"
    assert redact_text(text) == text


def test_log_redact_keys_also_name_query_parameters() -> None:
    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}, "LOG_REDACT_KEYS": ["X-Tenant-Hint"]}):
        assert redact_text("/x?x_tenant_hint=acme&page=1") == "/x?x_tenant_hint=[REDACTED]&page=1"


@pytest.mark.parametrize("wrap", [lambda request: request, lambda request: Request(request)], ids=["django", "drf"])
def test_request_objects_are_rendered_as_method_and_redacted_path(wrap) -> None:
    request = RequestFactory().post(f"/v1/models/{API_KEY}?token=abc123&page=2")
    assert redact({"request": wrap(request)}) == {"request": "POST /v1/models/[REDACTED]?token=[REDACTED]&page=2"}


def test_other_objects_are_redacted_as_the_text_they_render_as() -> None:
    error = ConnectionError(f"cannot reach https://upstream.example/v1?key=AIzaSy123&x=1 with {API_KEY}")
    assert redact([error, 3, 2.5, None, True]) == [
        "cannot reach https://upstream.example/v1?key=[REDACTED]&x=1 with [REDACTED]",
        3,
        2.5,
        None,
        True,
    ]
