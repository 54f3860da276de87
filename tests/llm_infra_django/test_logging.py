"""Logging: request ids, one `request_finished` line per request, and no secret in any log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from django.test import AsyncClient, Client, override_settings

from llm_infra_django.logging import (
    StructlogFormatter,
    log_audit,
    log_auth,
    log_cache,
    log_external_call,
    log_metric,
    log_request,
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
