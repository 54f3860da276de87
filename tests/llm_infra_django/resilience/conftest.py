"""Fixtures for the resilience tests."""

from tests.llm_infra_django.resilience.support import log_events, span_exporter

__all__ = ["log_events", "span_exporter"]
