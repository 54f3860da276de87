"""SLA monitoring: percentiles, upstream error rate, severities, alerts (log, audit, a real local webhook), status."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone

from apps.consumption import sla
from apps.consumption.models import SlaViolation
from apps.consumption.tasks import check_sla_task
from apps.publishing.models import ServiceVersion
from apps.tenancy.models import AuditLog
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


@pytest.fixture(autouse=True)
def _no_cached_statuses() -> Iterator[None]:
    cache.clear()
    yield
    cache.clear()


class Webhook:
    """A local HTTP server recording the JSON bodies POSTed to it (answering `status`)."""

    def __init__(self, status: int = 204) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    server = Webhook()
    with override_settings(MARKETPLACE_CONSUMPTION={"SLA_ALERT_WEBHOOK": server.url}):
        yield server
    server.close()


def traffic_of(
    traffic: Traffic, *, latencies: list[float], statuses: list[int] | None = None, minutes_ago: float = 5
) -> None:
    started = timezone.now() - timedelta(minutes=minutes_ago)
    statuses = statuses or [200] * len(latencies)
    write(
        [
            entry(traffic, started_at=started, latency=latency, status=status)
            for latency, status in zip(latencies, statuses, strict=True)
        ]
    )


def set_max_latency(traffic: Traffic, ms: int) -> None:
    ServiceVersion.objects.filter(pk=traffic.version.pk).update(sla_max_latency_ms=ms)


def violations() -> list[tuple[str, str]]:
    return sorted(SlaViolation.objects.values_list("metric", "severity"))


def test_percentiles_interpolate_like_postgresql(traffic: Traffic) -> None:
    traffic_of(traffic, latencies=[float(n) for n in range(1, 101)])

    [status] = sla.compute_sla([traffic.version.pk])

    assert status.requests == 100 and status.server_errors == 0 and status.availability == 100.0
    assert (status.p50_ms, status.p95_ms, status.p99_ms) == (50.5, 95.05, 99.01)
    assert status.state == "ok"


def test_error_rate_counts_upstream_failures_only(traffic: Traffic) -> None:
    statuses = [200] * 900 + [400] * 50 + [429] * 47 + [500, 502, 504]
    traffic_of(traffic, latencies=[10.0] * 1000, statuses=statuses)

    [status] = sla.compute_sla([traffic.version.pk])

    assert status.server_errors == 3 and status.error_rate == 0.003
    assert status.availability == 99.7
    assert status.error_rate_state == "critical"
    # latency percentiles are over answered requests only
    assert status.p99_ms == 10.0


@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (0, []),
        (2, []),
        (3, [("error_rate", "warning")]),
        (4, [("error_rate", "warning")]),
        (5, [("error_rate", "critical")]),
    ],
)
def test_error_rate_thresholds(traffic: Traffic, errors: int, expected: list[tuple[str, str]]) -> None:
    # 2000 requests: 2 errors = 0.1 % (not over), 3 = 0.15 % (warning), 4 = 0.2 % (not over critical), 5 = 0.25 %
    traffic_of(traffic, latencies=[10.0] * 2000, statuses=[502] * errors + [200] * (2000 - errors))

    sla.check_sla()

    assert violations() == expected


@pytest.mark.parametrize(
    ("latency", "expected"),
    [
        (90.0, []),
        (150.0, [("latency", "warning")]),
        (200.0, [("latency", "warning")]),
        (250.0, [("latency", "critical")]),
    ],
)
def test_latency_thresholds(traffic: Traffic, latency: float, expected: list[tuple[str, str]]) -> None:
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[latency] * 20)

    sla.check_sla()

    assert violations() == expected
    if expected:
        violation = SlaViolation.objects.get()
        assert violation.observed == latency
        assert violation.threshold == (200.0 if expected[0][1] == "critical" else 100.0)


def test_only_the_last_hour_counts(traffic: Traffic) -> None:
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[1000.0] * 10, minutes_ago=90)
    traffic_of(traffic, latencies=[10.0] * 10, minutes_ago=5)

    assert sla.check_sla() == []
    [status] = sla.compute_sla([traffic.version.pk])
    assert status.requests == 10


def test_a_violation_is_alerted_by_log_audit_and_webhook(
    traffic: Traffic, webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[300.0] * 10)

    [violation] = sla.check_sla()

    # the webhook got the alert as JSON
    assert len(webhook.bodies) == 1
    alert = webhook.bodies[0]
    assert alert["event"] == "sla_violation" and alert["id"] == str(violation.pk)
    assert (alert["metric"], alert["severity"], alert["observed"], alert["threshold"]) == (
        "latency",
        "critical",
        300.0,
        200.0,
    )
    assert alert["model_id"] == "acme/echo" and alert["publisher"] == "acme" and alert["version"] == "1.0.0"
    # an audit entry on the publisher's tenant
    audit = AuditLog.objects.get(action="sla_violated")
    assert audit.tenant_id == traffic.provider.pk and audit.object_id == str(violation.pk)
    assert audit.after["severity"] == "critical"
    # and a log line
    assert "sla_violation" in caplog.text


def test_a_lasting_breach_is_alerted_once_and_an_escalation_again(traffic: Traffic, webhook: Webhook) -> None:
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[150.0] * 10)
    assert len(sla.check_sla()) == 1
    assert sla.check_sla() == []  # same breach, same severity: no new row, no new alert

    traffic_of(traffic, latencies=[1000.0] * 40)  # p95 now over 2x
    escalated = sla.check_sla()

    assert [(v.metric, v.severity) for v in escalated] == [("latency", "critical")]
    assert [b["severity"] for b in webhook.bodies] == ["warning", "critical"]
    assert sla.check_sla() == []


def test_a_failing_webhook_does_not_lose_the_violation(traffic: Traffic, caplog: pytest.LogCaptureFixture) -> None:
    server = Webhook(status=500)
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[150.0] * 10)
    try:
        with override_settings(MARKETPLACE_CONSUMPTION={"SLA_ALERT_WEBHOOK": server.url}):
            created = sla.check_sla()
    finally:
        server.close()

    assert len(created) == 1 and SlaViolation.objects.count() == 1
    assert len(server.bodies) == 1
    assert "sla_webhook_failed" in caplog.text


def test_an_unreachable_webhook_is_logged(traffic: Traffic, caplog: pytest.LogCaptureFixture) -> None:
    from tests.conftest import free_port

    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[150.0] * 10)
    with override_settings(MARKETPLACE_CONSUMPTION={"SLA_ALERT_WEBHOOK": f"http://127.0.0.1:{free_port()}/"}):
        assert len(sla.check_sla()) == 1
    assert "sla_webhook_failed" in caplog.text


def test_the_status_selector(traffic: Traffic) -> None:
    # without traffic
    assert sla.get_sla_status(traffic.version.pk)["state"] == "no_data"
    assert sla.get_sla_statuses([traffic.version.pk])[str(traffic.version.pk)]["state"] == "no_data"

    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[150.0] * 10)
    sla.check_sla()

    cached = sla.get_sla_statuses([traffic.version.pk, traffic.other_version.pk])
    assert cached[str(traffic.version.pk)]["state"] == "warning"
    assert cached[str(traffic.version.pk)]["p95_ms"] == 150.0
    assert cached[str(traffic.other_version.pk)]["state"] == "no_data"
    status = sla.get_sla_status(traffic.version.pk)
    assert status["availability"] == 100.0 and status["requests"] == 10 and status["latency_state"] == "warning"
    # computed on demand when nothing is cached
    cache.clear()
    assert sla.get_sla_status(traffic.version.pk)["state"] == "warning"


def test_the_periodic_task(traffic: Traffic) -> None:
    set_max_latency(traffic, 100)
    traffic_of(traffic, latencies=[150.0] * 10)

    assert check_sla_task.delay().get() == 1
    assert check_sla_task.delay().get() == 0


def test_measured_sla_is_shown_in_the_catalog(api_key, echo_service, consumer) -> None:
    """Publishing's service responses carry what the consumption app measured (no data before any check)."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(consumer.owner)
    body = client.get(f"/api/v1/services/{echo_service.pk}/").json()
    measured = [v["sla"]["measured"] for v in body["versions"]]
    assert measured and all(m["state"] == "no_data" for m in measured), body
