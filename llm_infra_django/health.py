"""Liveness (`/healthz`), readiness (`/readyz`: database, cache, broker with latency) probes."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

from llm_infra_django.conf import infra_settings


class NotConfigured(Exception):
    """Raised by a check whose dependency is not configured: reported as skipped, not as a failure."""


def check_database() -> None:
    """Run `SELECT 1` on every configured database."""
    for alias in connections:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()


def check_cache() -> None:
    """Ping the Redis behind the cache alias (bypassing any fail-open wrapper), else a set/get round trip."""
    cache = caches[infra_settings.CACHE_ALIAS]
    client = getattr(cache, "client", None)
    get_client = getattr(client, "get_client", None)
    if callable(get_client):
        get_client(write=True).ping()
        return
    cache.set("llm_infra:readyz", "1", 5)
    if cache.get("llm_infra:readyz") != "1":
        raise RuntimeError("cache did not return the value just written")


def check_broker() -> None:
    """Connect to the Celery broker of `CELERY_BROKER_URL`; skipped when tasks run eagerly."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url or url.startswith("memory://") or getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        raise NotConfigured("no broker: tasks run eagerly in-process")
    from kombu import Connection

    with Connection(url, connect_timeout=2, transport_options={"socket_timeout": 2}) as connection:
        connection.ensure_connection(max_retries=1, timeout=2)


def run_checks() -> tuple[bool, dict[str, dict[str, Any]]]:
    """Run every readiness check; return (all healthy, per-check results with latency)."""
    results: dict[str, dict[str, Any]] = {}
    healthy = True
    for name, check in (infra_settings.READINESS_CHECKS or {}).items():
        started = time.perf_counter()
        try:
            check()
        except NotConfigured as exc:
            results[name] = {"status": "skipped", "reason": str(exc)}
            continue
        except Exception as exc:
            healthy = False
            results[name] = {
                "status": "fail",
                "error": f"{type(exc).__name__}: {exc}"[:300],
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
            }
            continue
        results[name] = {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    return healthy, results


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is alive and serving requests."""
    return JsonResponse({"status": "ok"})


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Every dependency answers: 200, else 503 naming the failing ones."""
    healthy, results = run_checks()
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable", "checks": results}
    if not healthy:
        body["failing"] = [name for name, result in results.items() if result["status"] == "fail"]
    return JsonResponse(body, status=200 if healthy else 503)
