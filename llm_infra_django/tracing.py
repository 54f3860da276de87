"""OpenTelemetry set-up (provider, settings-driven sampler, exporter, Django instrumentation) and span helpers."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import (
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

# Probes and scrapes are not traced unless OTEL_PYTHON_DJANGO_EXCLUDED_URLS says otherwise.
DEFAULT_EXCLUDED_URLS = "/healthz$,/readyz$,/metrics$"

_lock = threading.Lock()
_provider: TracerProvider | None = None
_attached: list[SpanProcessor] = []


class SettingsSampler(Sampler):
    """Parent-based ratio sampling that reads `TRACING["ENABLED"]` and `["SAMPLE_RATE"]` when each span starts.

    A root span is kept with probability SAMPLE_RATE (0.0 keeps none, 1.0 all); a child follows its parent's
    decision, including a remote parent's `traceparent` flag. ENABLED False drops everything.
    """

    def __init__(self) -> None:
        self._by_rate: dict[float, Sampler] = {}

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        from llm_infra_django.conf import infra_settings

        options = infra_settings.TRACING
        if not options.get("ENABLED"):
            return SamplingResult(Decision.DROP)
        rate = float(options.get("SAMPLE_RATE", 1.0))
        sampler = self._by_rate.get(rate)
        if sampler is None:
            sampler = self._by_rate.setdefault(rate, ParentBased(TraceIdRatioBased(rate)))
        return sampler.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "SettingsSampler{LLM_INFRA['TRACING']}"


def configure_tracing(*, span_processor: SpanProcessor | None = None) -> bool:
    """Install the tracer provider and instrument Django from `LLM_INFRA["TRACING"]`, once per process.

    Call it early in every entry point (manage.py, ASGI/WSGI modules, Celery worker start); it only reads settings,
    so it is safe before `django.setup()`. Returns True when tracing is on. Later calls change nothing except adding
    `span_processor` (once), which is how tests attach an in-memory exporter. When another SDK provider is already
    installed (e.g. by `opentelemetry-instrument`), spans go through it instead of a second provider.
    """
    global _provider
    with _lock:
        if _provider is None:
            from llm_infra_django.conf import infra_settings

            options = dict(infra_settings.TRACING)
            if not options.get("ENABLED"):
                return False
            if "EXPORTER" not in (infra_settings.user_settings.get("TRACING") or {}):
                options["EXPORTER"] = None
            _provider = _install_provider(options)
            _instrument_django()
        if span_processor is not None and span_processor not in _attached:
            _provider.add_span_processor(span_processor)
            _attached.append(span_processor)
        return True


def _install_provider(options: Mapping[str, Any]) -> TracerProvider:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        provider = current
    else:
        provider = TracerProvider(
            resource=Resource.create({"service.name": options.get("SERVICE_NAME") or "llm-marketplace"}),
            sampler=SettingsSampler(),
        )
        trace.set_tracer_provider(provider)
    exporter = span_exporter(options)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def span_exporter(options: Mapping[str, Any]) -> SpanExporter | None:
    """The exporter `TRACING` asks for: EXPORTER "otlp", "console" or "none".

    EXPORTER None (or "auto", or not set in `LLM_INFRA`) means OTLP when an endpoint is configured
    (`OTLP_ENDPOINT`, else the `OTEL_EXPORTER_OTLP_ENDPOINT` environment variable) and none otherwise.
    """
    name = (options.get("EXPORTER") or "auto").lower()
    endpoint = options.get("OTLP_ENDPOINT")
    if name == "auto":
        name = "otlp" if endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "none"
    if name == "none":
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint or None)
    raise ImproperlyConfigured(f"Unknown LLM_INFRA['TRACING']['EXPORTER'] {name!r}: use 'otlp', 'console' or 'none'.")


def _instrument_django() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(
            response_hook=_response_hook,
            excluded_urls=os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS),
        )


def _response_hook(span: trace.Span, request: Any, response: Any) -> None:
    """Add the tenant (`TENANT_RESOLVER`) and the authenticated user to the server span."""
    if not span.is_recording():
        return
    from llm_infra_django.logging import get_context
    from llm_infra_django.middleware import resolved_tenant, resolved_user_id

    # The log context is already cleared when the OTel middleware is outermost (its default place).
    context = get_context()
    tenant = context.get("tenant") or resolved_tenant(request)
    user = context.get("user") or resolved_user_id(request)
    if tenant:
        span.set_attribute("tenant.id", tenant)
    if user:
        span.set_attribute("enduser.id", user)


def get_tracer() -> trace.Tracer:
    return trace.get_tracer("llm_infra_django")


@contextmanager
def span(
    name: str, *, kind: trace.SpanKind = trace.SpanKind.INTERNAL, attributes: dict[str, Any] | None = None
) -> Iterator[trace.Span]:
    """Run the block in a span; an exception is recorded on the span and re-raised."""
    with get_tracer().start_as_current_span(name, kind=kind, attributes=attributes or {}) as current:
        yield current


def http_client_span(service: str, method: str, url: str) -> AbstractContextManager[trace.Span]:
    """A CLIENT span for an outbound HTTP call; pair it with `inject_trace_headers` on the request headers."""
    parts = urlsplit(url)
    attributes: dict[str, Any] = {"http.request.method": method.upper(), "url.full": url, "peer.service": service}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    if parts.port:
        attributes["server.port"] = parts.port
    return span(f"{method.upper()} {service}", kind=trace.SpanKind.CLIENT, attributes=attributes)


def db_span(operation: str, *, system: str = "postgresql", statement: str | None = None) -> AbstractContextManager[Any]:
    """A CLIENT span for a database operation done outside the ORM's own instrumentation."""
    attributes = {"db.system": system, "db.operation.name": operation}
    if statement:
        attributes["db.query.text"] = statement
    return span(f"db {operation}", kind=trace.SpanKind.CLIENT, attributes=attributes)


def cache_span(operation: str, key: str) -> AbstractContextManager[Any]:
    """A CLIENT span for a cache operation."""
    return span(
        f"cache {operation}",
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": "redis", "db.operation.name": operation, "cache.key": key},
    )


def inject_trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add W3C `traceparent`/`tracestate` of the current span to outbound request headers."""
    from opentelemetry import propagate

    propagate.inject(headers)
    return headers
