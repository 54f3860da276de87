"""Prometheus metrics of the infrastructure and the `/metrics` view (multiprocess-safe)."""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
from collections.abc import Sequence

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client import REGISTRY as DEFAULT_REGISTRY

from llm_infra_django.conf import infra_settings
from llm_infra_django.errors import AppError, AuthenticationError, AuthorizationError
from llm_infra_django.responses import envelope_response

logger = logging.getLogger("llm_infra.metrics")

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Methods outside this set share one label value, so clients cannot create label values at will.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})

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


def multiprocess_enabled() -> bool:
    """Whether this process writes metric values to files in `PROMETHEUS_MULTIPROC_DIR`.

    prometheus_client decides this once, when it is imported, from the environment variable as it was then.
    """
    return values.ValueClass is not values.MutexValue


def registry() -> CollectorRegistry:
    """The registry to expose: every worker process's values in multiprocess mode, this process's otherwise.

    Multiprocess mode (uvicorn `--workers N`, gunicorn, several Celery children): export `PROMETHEUS_MULTIPROC_DIR`
    pointing at an empty directory before the server starts, so it is set before any process imports
    prometheus_client; empty it on every (re)start of the whole server, never while workers run. Each process then
    writes its values to files there and `/metrics`, in whichever worker answers, sums counters and histograms over
    all of them (including exited processes, so counters never go backwards). No gauge here uses a `live*` mode, so
    gunicorn's `child_exit` hook calling `prometheus_client.multiprocess.mark_process_dead` is optional.
    """
    if multiprocess_enabled():
        from prometheus_client import multiprocess

        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)
        return collected
    if os.environ.get(MULTIPROC_DIR_ENV):
        logger.warning(
            "%s is set but prometheus_client was imported before it was: /metrics shows this process only",
            MULTIPROC_DIR_ENV,
        )
    return DEFAULT_REGISTRY


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    """Record one finished HTTP request by route template (`resolver_match.route`), never by raw path.

    Unmatched requests share the route `<unmatched>` and unknown methods the method `OTHER`, so clients cannot
    create label values at will.
    """
    label = route if route is not None else "<unmatched>"
    method = method.upper() if method.upper() in HTTP_METHODS else "OTHER"
    HTTP_REQUESTS.labels(method, label, str(status)).inc()
    HTTP_LATENCY.labels(method, label).observe(seconds)


@functools.lru_cache(maxsize=8)
def allowed_networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`METRICS_ALLOWED_NETWORKS` parsed (a bad entry raises ValueError: /metrics then answers nobody)."""
    return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def metrics_refusal(request: HttpRequest) -> AppError | None:
    """Why `request` may not read the metrics (`METRICS_ALLOWED_NETWORKS`, then `METRICS_TOKEN`), or None."""
    # Imported here: the identity module imports the middleware, which imports this module.
    from llm_infra_django.ratelimit.identity import client_address

    cidrs: Sequence[str] = infra_settings.METRICS_ALLOWED_NETWORKS or ()
    if cidrs:
        address = client_address(request)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:  # an IPv4 client of a dual-stack socket
            address = address.ipv4_mapped
        if address is None or not any(address in network for network in allowed_networks(tuple(cidrs))):
            return AuthorizationError("The metrics are not served to this address.")
    token = infra_settings.METRICS_TOKEN
    if token and not hmac.compare_digest(_bearer_token(request).encode(), str(token).encode()):
        return AuthenticationError("The metrics need the scrape token (Authorization: Bearer).")
    return None


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text exposition, to the clients `METRICS_ALLOWED_NETWORKS` and `METRICS_TOKEN` admit."""
    refusal = metrics_refusal(request)
    if refusal is not None:
        response = envelope_response(refusal, request)
        if isinstance(refusal, AuthenticationError):
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
