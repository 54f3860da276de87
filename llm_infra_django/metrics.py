"""Prometheus metrics of the infrastructure and the `/metrics` view (multiprocess-safe)."""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "llm_infra_http_requests_total",
    "HTTP requests by route template, method and status.",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "llm_infra_http_request_duration_seconds",
    "HTTP request latency by route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
CACHE_OPERATIONS = Counter(
    "llm_infra_cache_operations_total", "Cache lookups by alias and result (hit, miss, error).", ["alias", "result"]
)
CIRCUIT_STATE = Gauge(
    "llm_infra_circuit_state",
    "Circuit breaker state as last seen by a process: 0 closed, 1 half-open, 2 open.",
    ["name"],
    multiprocess_mode="mostrecent",
)
CIRCUIT_TRANSITIONS = Counter(
    "llm_infra_circuit_transitions_total", "Circuit breaker state changes.", ["name", "state"]
)
RATELIMIT_DECISIONS = Counter(
    "llm_infra_ratelimit_decisions_total",
    "Rate limiter decisions by scope, algorithm and outcome (allowed, denied, error).",
    ["scope", "algorithm", "decision"],
)
UPSTREAM_LATENCY = Histogram(
    "llm_infra_upstream_request_duration_seconds",
    "Latency of calls to upstream services by service and outcome.",
    ["service", "outcome"],
    buckets=LATENCY_BUCKETS,
)


def registry() -> CollectorRegistry:
    """The registry to expose: all worker processes' values in multiprocess mode, this process's otherwise."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    return DEFAULT_REGISTRY


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """Record one finished HTTP request (unmatched routes are grouped, so raw paths never become labels)."""
    label = route if route is not None else "<unmatched>"
    HTTP_REQUESTS.labels(method, label, str(status)).inc()
    HTTP_LATENCY.labels(method, label).observe(seconds)


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition."""
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
