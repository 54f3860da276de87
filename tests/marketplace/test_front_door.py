"""The project serves the operations endpoints, the admin, the API schema and GraphQL."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.support.asgi import asgi_request, proxy_application

pytestmark = pytest.mark.django_db

SECURITY_HEADERS = (
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
    "X-Frame-Options",
    "Strict-Transport-Security",
)


def test_healthz_and_readyz() -> None:
    client = Client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.content
    assert set(ready.json()["checks"]) == {"database", "cache", "broker"}


def test_admin_login_page_and_its_static_files() -> None:
    client = Client()
    page = client.get("/admin/login/")
    assert page.status_code == 200
    assert b"Django administration" in page.content or b"Log in" in page.content
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200


def test_api_schema_and_docs_are_served_offline() -> None:
    client = Client()
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["info"]["title"] == "LLM Marketplace API"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"cdn." not in docs.content
    assert b"/static/drf_spectacular_sidecar/" in docs.content


def test_graphql_root_answers() -> None:
    response = Client().post("/graphql", {"query": "{ apiVersion }"}, content_type="application/json")
    assert response.status_code == 200
    assert response.json()["data"]["apiVersion"]


def test_unknown_api_route_is_an_error_envelope() -> None:
    response = Client().get("/api/v1/nothing-here/", HTTP_ACCEPT="application/json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_metrics_are_exposed() -> None:
    client = Client()
    client.get("/healthz")
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert b'llm_infra_http_requests_total{method="GET",route="healthz",status="200"}' in metrics.content


@pytest.mark.parametrize(
    ("overrides", "scheme", "forwarded"),
    [
        ({}, "http", {}),
        ({"SECURE_HSTS_SECONDS": 31_536_000, "SECURE_HSTS_INCLUDE_SUBDOMAINS": True}, "https", {}),
        (
            {"SECURE_HSTS_SECONDS": 3600, "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https")},
            "http",
            {"X-Forwarded-Proto": "https"},
        ),
    ],
    ids=["development", "production-tls", "production-behind-a-tls-proxy"],
)
def test_the_proxy_sends_the_security_headers_the_rest_sends(overrides: dict, scheme: str, forwarded: dict) -> None:
    # given the project's settings (and production's HSTS, the request secure or forwarded from a TLS proxy)
    with override_settings(**overrides):
        # when the proxy's lean handler and Django's stack answer
        proxy = asgi_request(proxy_application(), "GET", "/v1/models", headers=forwarded, scheme=scheme)
        rest = Client().get("/healthz", secure=scheme == "https", headers=forwarded)

    # then both carry the same security headers
    assert proxy.status_code == 401 and rest.status_code == 200
    expected = {name: rest.headers.get(name) for name in SECURITY_HEADERS}
    assert {name: proxy.headers.get(name) for name in SECURITY_HEADERS} == expected
    assert expected["X-Content-Type-Options"] == "nosniff" and expected["X-Frame-Options"] == "DENY"
    assert (expected["Strict-Transport-Security"] is not None) == bool(overrides)
