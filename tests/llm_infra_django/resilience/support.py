"""Fixtures shared by the resilience and upstream tests: captured log events and an in-memory span exporter."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from llm_infra_django import tracing


@pytest.fixture
def log_events(caplog: pytest.LogCaptureFixture) -> Callable[[str], list[dict[str, Any]]]:
    """`log_events("external_call")` → the event dicts of that name logged so far by the test."""
    caplog.set_level(logging.INFO, logger="llm_infra")

    def events(name: str) -> list[dict[str, Any]]:
        return [
            record.msg for record in caplog.records if isinstance(record.msg, dict) and record.msg.get("event") == name
        ]

    return events


@pytest.fixture
def span_exporter(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Spans of `llm_infra_django.tracing` go to a private SDK provider for this test only.

    The global tracer provider can be set once per process and may belong to another test, so the package's
    tracer is pointed at a local provider instead; W3C propagation reads the current span from the context,
    whatever provider made it.
    """
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "get_tracer", lambda: provider.get_tracer("llm_infra_django"))
    yield exporter
    provider.shutdown()
