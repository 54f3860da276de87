"""Tracing: server spans with tenant and user, client spans propagating `traceparent`, sampling, exporters."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.sdk.trace.export import ConsoleSpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from llm_infra_django.tracing import cache_span, configure_tracing, db_span, span, span_exporter
from tests.llm_infra_django.tracing_support import EXPORTER, PROCESSOR

ROOT = Path(__file__).resolve().parents[2]
OTEL_MIDDLEWARE = DjangoInstrumentor._opentelemetry_middleware
TRACING_ON = {
    "TRACING": {"ENABLED": True, "SAMPLE_RATE": 1.0, "EXPORTER": "none"},
    "TENANT_RESOLVER": "tests.llm_infra_django.tracing_support.project.tenant_from_header",
}


@pytest.fixture
def spans() -> Iterator:
    """Tracing on, the in-memory exporter attached and emptied, the support project's URLs and middleware."""
    base = [entry for entry in settings.MIDDLEWARE if entry != OTEL_MIDDLEWARE]
    # Instrumenting inserts the OTel middleware into MIDDLEWARE: give it a copy, not the shared test settings.
    with override_settings(LLM_INFRA=TRACING_ON, MIDDLEWARE=list(base)):
        assert configure_tracing(span_processor=PROCESSOR)
    middleware = [OTEL_MIDDLEWARE, *base, "tests.llm_infra_django.tracing_support.project.HeaderUserMiddleware"]
    with override_settings(
        LLM_INFRA=TRACING_ON, MIDDLEWARE=middleware, ROOT_URLCONF="tests.llm_infra_django.tracing_support.project"
    ):
        EXPORTER.clear()
        yield EXPORTER
    EXPORTER.clear()


@pytest.fixture
def upstream_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A real local HTTP server recording the headers of each request it receives."""
    received: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append({name.lower(): value for name, value in self.headers.items()})
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/models", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_one_server_span_per_request_carries_route_tenant_and_user(spans, client):
    # when
    response = client.get("/things/7", headers={"X-Tenant": "acme", "X-User": "42"})

    # then
    assert response.status_code == 200
    (server,) = [item for item in spans.get_finished_spans() if item.kind == SpanKind.SERVER]
    assert server.name == "GET things/<int:pk>"
    assert server.attributes["http.route"] == "things/<int:pk>"
    assert server.attributes["tenant.id"] == "acme"
    assert server.attributes["enduser.id"] == "42"


def test_anonymous_requests_have_no_tenant_or_user_attributes(spans, client):
    # when
    client.get("/things/8")

    # then
    (server,) = spans.get_finished_spans()
    assert "tenant.id" not in server.attributes and "enduser.id" not in server.attributes


def test_an_upstream_call_is_a_client_span_whose_traceparent_reaches_the_server(spans, client, upstream_server):
    # given
    url, received = upstream_server

    # when
    response = client.get("/upstream", {"url": url})

    # then
    assert response.json() == {"upstream_status": 200}
    by_kind = {item.kind: item for item in spans.get_finished_spans()}
    server, outbound = by_kind[SpanKind.SERVER], by_kind[SpanKind.CLIENT]
    assert outbound.name == "GET registry"
    assert outbound.parent.span_id == server.context.span_id
    assert outbound.attributes["server.address"] == "127.0.0.1"
    assert outbound.attributes["http.response.status_code"] == 200
    version, trace_id, parent_id, flags = received[0]["traceparent"].split("-")
    assert version == "00" and int(flags, 16) & 0x01, "sampled flag set"
    assert int(trace_id, 16) == server.context.trace_id == outbound.context.trace_id
    assert int(parent_id, 16) == outbound.context.span_id


def test_log_lines_of_a_request_carry_its_trace_id(spans, client, caplog):
    # given
    caplog.set_level(logging.INFO)

    # when
    client.get("/things/9")

    # then
    (server,) = spans.get_finished_spans()
    finished = [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg.get("event") == "request_finished"]
    assert finished[-1]["trace_id"] == format(server.context.trace_id, "032x")


def test_sample_rate_zero_exports_no_spans(spans, client, upstream_server):
    # given
    url, received = upstream_server

    # when
    with override_settings(LLM_INFRA={**TRACING_ON, "TRACING": {"ENABLED": True, "SAMPLE_RATE": 0.0}}):
        client.get("/things/1")
        client.get("/upstream", {"url": url})

    # then
    assert spans.get_finished_spans() == ()
    flags = received[0]["traceparent"].rsplit("-", 1)[1]
    assert not int(flags, 16) & 0x01, "the not-sampled decision is propagated"


def test_disabling_tracing_in_settings_stops_spans_at_once(spans, client):
    # when
    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}}):
        client.get("/things/1")

    # then
    assert spans.get_finished_spans() == ()


def test_configure_tracing_is_idempotent(spans):
    # given
    provider = trace.get_tracer_provider()

    # when
    again = configure_tracing(span_processor=PROCESSOR), configure_tracing()

    # then
    assert again == (True, True)
    assert trace.get_tracer_provider() is provider
    with span("once"):
        pass
    assert [item.name for item in spans.get_finished_spans()] == ["once"]


def test_span_helpers_describe_db_and_cache_calls_and_record_errors(spans):
    # when
    with db_span("SELECT", system="sqlite", statement="SELECT 1"):
        pass
    with cache_span("get", "catalog:models"):
        pass
    with pytest.raises(ValueError), span("work"):
        raise ValueError("boom")

    # then
    db, cache, work = spans.get_finished_spans()
    assert db.kind == SpanKind.CLIENT
    assert (db.attributes["db.system"], db.attributes["db.query.text"]) == ("sqlite", "SELECT 1")
    assert (cache.name, cache.attributes["cache.key"]) == ("cache get", "catalog:models")
    assert work.status.status_code == StatusCode.ERROR
    assert work.events[0].name == "exception"


def test_tracing_disabled_installs_nothing():
    # given a fresh process on the infra test settings (TRACING ENABLED False)
    script = (
        "import django; django.setup(); from opentelemetry import trace; "
        "from llm_infra_django.tracing import configure_tracing; "
        "print(configure_tracing(), type(trace.get_tracer_provider()).__name__)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.llm_infra_django.settings"}

    # when
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    # then
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "ProxyTracerProvider"]


@pytest.mark.parametrize(
    ("options", "environment", "expected"),
    [
        ({"EXPORTER": None, "OTLP_ENDPOINT": "http://collector:4318"}, None, "http://collector:4318/v1/traces"),
        ({"EXPORTER": None, "OTLP_ENDPOINT": None}, "http://env-collector:4318", "http://env-collector:4318/v1/traces"),
        ({"EXPORTER": "otlp", "OTLP_ENDPOINT": "http://c:4318/v1/traces"}, None, "http://c:4318/v1/traces"),
        ({"EXPORTER": None, "OTLP_ENDPOINT": None}, None, None),
        ({"EXPORTER": "none", "OTLP_ENDPOINT": "http://collector:4318"}, None, None),
        ({"EXPORTER": "console"}, None, "console"),
    ],
)
def test_exporter_follows_the_settings_and_the_otlp_endpoint(monkeypatch, options, environment, expected):
    # given
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    if environment:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", environment)

    # when
    exporter = span_exporter(options)

    # then
    if expected is None:
        assert exporter is None
    elif expected == "console":
        assert isinstance(exporter, ConsoleSpanExporter)
    else:
        assert isinstance(exporter, OTLPSpanExporter)
        assert exporter._endpoint == expected


def test_an_unknown_exporter_is_a_configuration_error():
    # when / then
    with pytest.raises(ImproperlyConfigured, match="'zipkin'"):
        span_exporter({"EXPORTER": "zipkin"})
