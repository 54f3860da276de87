"""OpenTelemetry set-up: provider, sampler, exporter and Django instrumentation, configured once per process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from opentelemetry import trace

_lock = threading.Lock()
_configured = False


def configure_tracing() -> bool:
    """Install the tracer provider and instrument Django from `LLM_INFRA["TRACING"]`. Idempotent.

    Returns True when tracing is on. Safe to call before `django.setup()` (it only reads settings).
    """
    global _configured
    with _lock:
        if _configured:
            return True
        from llm_infra_django.conf import infra_settings

        options = infra_settings.TRACING
        if not options.get("ENABLED"):
            return False
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        provider = TracerProvider(
            resource=Resource.create({"service.name": options.get("SERVICE_NAME") or "llm-marketplace"}),
            sampler=ParentBased(TraceIdRatioBased(float(options.get("SAMPLE_RATE", 1.0)))),
        )
        processor = _span_processor(options)
        if processor is not None:
            provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        _instrument_django()
        _configured = True
        return True


def _span_processor(options: dict[str, Any]) -> Any:
    exporter_name = (options.get("EXPORTER") or "none").lower()
    if exporter_name == "none":
        return None
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if exporter_name == "console":
        return BatchSpanProcessor(ConsoleSpanExporter())
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = options.get("OTLP_ENDPOINT")
        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    raise ValueError(f"Unknown TRACING exporter {exporter_name!r}; use 'otlp', 'console' or 'none'.")


def _instrument_django() -> None:
    from opentelemetry.instrumentation.django import DjangoInstrumentor

    instrumentor = DjangoInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(response_hook=_response_hook)


def _response_hook(span: trace.Span, request: Any, response: Any) -> None:
    """Add the tenant and the authenticated user to the server span."""
    if not span.is_recording():
        return
    from llm_infra_django.logging import get_context
    from llm_infra_django.middleware import resolved_tenant, resolved_user_id

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
    return span(
        f"{method.upper()} {service}",
        kind=trace.SpanKind.CLIENT,
        attributes={"http.request.method": method.upper(), "url.full": url, "peer.service": service},
    )


def db_span(operation: str, *, system: str = "postgresql", statement: str | None = None) -> AbstractContextManager[Any]:
    """A CLIENT span for a database operation done outside the ORM's own instrumentation."""
    attributes = {"db.system": system, "db.operation.name": operation}
    if statement:
        attributes["db.query.text"] = statement
    return span(f"db {operation}", kind=trace.SpanKind.CLIENT, attributes=attributes)


def cache_span(operation: str, key: str) -> AbstractContextManager[Any]:
    """A CLIENT span for a cache operation."""
    return span(f"cache {operation}", kind=trace.SpanKind.CLIENT, attributes={"db.system": "redis", "cache.key": key})


def inject_trace_headers(headers: dict[str, str]) -> dict[str, str]:
    """Add W3C `traceparent`/`tracestate` of the current span to outbound request headers."""
    from opentelemetry import propagate

    propagate.inject(headers)
    return headers
