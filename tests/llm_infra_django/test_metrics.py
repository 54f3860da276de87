"""/metrics: request counts and latency by route template, bounded labels, and multiprocess aggregation."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from llm_infra_django import metrics

ROOT = Path(__file__).resolve().parents[2]
ROUTE = "plain/raise/<str:name>"
BASE = {"TRACING": {"ENABLED": False}}

WRITER = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from llm_infra_django import metrics
    assert metrics.multiprocess_enabled()
    requests, circuit_state = int(sys.argv[1]), int(sys.argv[2])
    for _ in range(requests):
        metrics.observe_request("GET", "services/<slug:slug>", 200, 0.02)
    metrics.CACHE_OPERATIONS.labels("default", "hit").inc(requests)
    metrics.CIRCUIT_STATE.labels("registry").set(circuit_state)
    """
)
READER = textwrap.dedent(
    """
    import sys
    import django
    django.setup()
    from django.test import Client
    response = Client().get("/metrics")
    assert response.status_code == 200, response.status_code
    sys.stdout.write(response.content.decode())
    """
)


def _requests(route: str, status: str, method: str = "GET") -> float:
    labels = {"method": method, "route": route, "status": status}
    return REGISTRY.get_sample_value("llm_infra_http_requests_total", labels) or 0.0


def _samples(exposition: str, name: str) -> list[tuple[dict[str, str], float]]:
    return [
        (sample.labels, sample.value)
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
        if sample.name == name
    ]


def _run(script: str, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_requests_are_counted_by_route_template_not_raw_path(client):
    # given
    before = _requests(ROUTE, "404"), _requests(ROUTE, "409")

    # when
    client.get("/plain/raise/not_found")
    client.get("/plain/raise/not_found")
    client.get("/plain/raise/conflict")
    exposition = client.get("/metrics").content.decode()

    # then
    assert (_requests(ROUTE, "404") - before[0], _requests(ROUTE, "409") - before[1]) == (2, 1)
    assert f'llm_infra_http_requests_total{{method="GET",route="{ROUTE}",status="404"}}' in exposition
    assert f'llm_infra_http_request_duration_seconds_count{{method="GET",route="{ROUTE}"}}' in exposition
    assert "not_found" not in exposition and "/plain/raise" not in exposition


def test_unmatched_paths_and_unknown_methods_share_one_label_value(client):
    # given
    unmatched_before = _requests("<unmatched>", "404")
    other_before = _requests("plain/ok", "200", method="OTHER")

    # when
    client.get("/no/such/page/12345")
    client.generic("BREW", "/plain/ok")
    exposition = client.get("/metrics").content.decode()

    # then
    assert _requests("<unmatched>", "404") - unmatched_before == 1
    assert _requests("plain/ok", "200", method="OTHER") - other_before == 1
    assert "12345" not in exposition and "BREW" not in exposition


def test_metrics_view_serves_the_prometheus_text_format(client):
    # when
    response = client.get("/metrics")

    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert "no-cache" in response["Cache-Control"]
    names = {family.name for family in text_string_to_metric_families(response.content.decode())}
    assert {"llm_infra_http_requests", "llm_infra_cache_operations", "llm_infra_ratelimit_decisions"} <= names


def test_two_processes_writing_to_one_multiprocess_dir_are_reported_as_their_sum(tmp_path):
    # given
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "tests.llm_infra_django.settings",
    }
    _run(WRITER, env, "3", "2")
    _run(WRITER, env, "4", "0")

    # when
    exposition = _run(READER, env)

    # then
    requests = _samples(exposition, "llm_infra_http_requests_total")
    assert ({"method": "GET", "route": "services/<slug:slug>", "status": "200"}, 7.0) in requests
    assert ({"method": "GET", "route": "services/<slug:slug>"}, 7.0) in _samples(
        exposition, "llm_infra_http_request_duration_seconds_count"
    )
    assert _samples(exposition, "llm_infra_cache_operations_total") == [({"alias": "default", "result": "hit"}, 7.0)]
    assert _samples(exposition, "llm_infra_circuit_state") == [({"name": "registry"}, 0.0)]


def test_a_multiproc_dir_set_after_import_is_reported(monkeypatch, tmp_path, caplog):
    # given
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    caplog.set_level(logging.WARNING, logger="llm_infra.metrics")

    # when
    chosen = metrics.registry()

    # then
    assert chosen is REGISTRY
    assert "imported before" in caplog.text


TOKEN = "scrape-token-0123456789"
METRIC_NAME = b"llm_infra_http_requests_total"


def _scrape(client, *, address: str = "127.0.0.1", token: str | None = None, **extra: str):
    if token is not None:
        extra["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return client.get("/metrics", REMOTE_ADDR=address, **extra)


def _refused(response, status: int) -> None:
    assert response.status_code == status
    assert METRIC_NAME not in response.content
    assert response.json()["error"]["code"] == ("authentication_error" if status == 401 else "authorization_error")


@pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789", TOKEN + "x", TOKEN[:-1]])
def test_a_metrics_token_refuses_scrapes_without_it(client, token: str | None) -> None:
    with override_settings(LLM_INFRA={**BASE, "METRICS_TOKEN": TOKEN}):
        response = _scrape(client, token=token)

    _refused(response, 401)
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'


def test_a_metrics_token_admits_the_scraper_that_sends_it(client) -> None:
    with override_settings(LLM_INFRA={**BASE, "METRICS_TOKEN": TOKEN}):
        response = _scrape(client, token=TOKEN)

    assert response.status_code == 200 and METRIC_NAME in response.content


@pytest.mark.parametrize(
    ("address", "forwarded", "admitted"),
    [
        ("10.1.2.3", None, True),
        ("::ffff:10.1.2.3", None, True),  # an IPv4 client of a dual-stack socket
        ("fd00:5::7", None, True),
        ("192.0.2.7", None, False),
        ("2001:db8::7", None, False),
        ("10.0.0.9", "192.0.2.7", False),  # the proxy is inside, the client it forwards is not
        ("10.0.0.9", "198.51.100.1, 10.1.2.3", True),  # the entry the trusted proxy appended decides
    ],
)
def test_allowed_networks_admit_only_their_clients(client, address: str, forwarded: str | None, admitted: bool) -> None:
    # given metrics served to two networks, behind one trusted proxy when a request comes through one
    networks = ["10.0.0.0/8", " fd00::/8"]
    proxies = 1 if forwarded else 0
    extra = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}

    # when a client scrapes
    with override_settings(LLM_INFRA={**BASE, "METRICS_ALLOWED_NETWORKS": networks, "NUM_PROXIES": proxies}):
        response = _scrape(client, address=address, **extra)

    # then only the clients inside them get the metrics
    if admitted:
        assert response.status_code == 200 and METRIC_NAME in response.content
    else:
        _refused(response, 403)


def test_with_both_settings_a_scrape_needs_the_network_and_the_token(client) -> None:
    with override_settings(LLM_INFRA={**BASE, "METRICS_TOKEN": TOKEN, "METRICS_ALLOWED_NETWORKS": ["10.0.0.0/8"]}):
        outside = _scrape(client, address="192.0.2.7", token=TOKEN)
        no_token = _scrape(client, address="10.1.2.3")
        both = _scrape(client, address="10.1.2.3", token=TOKEN)

    _refused(outside, 403)
    _refused(no_token, 401)
    assert both.status_code == 200


def test_the_settings_are_read_at_each_scrape(client) -> None:
    assert _scrape(client).status_code == 200
    with override_settings(LLM_INFRA={**BASE, "METRICS_TOKEN": TOKEN}):
        assert _scrape(client).status_code == 401
    assert _scrape(client).status_code == 200
