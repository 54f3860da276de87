"""Support for the tracing tests: one in-memory exporter per process, a tiny project (URLs, views, middleware)."""

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

# The global tracer provider can be set once per process, so every test module in a process shares these.
EXPORTER = InMemorySpanExporter()
PROCESSOR = SimpleSpanProcessor(EXPORTER)
