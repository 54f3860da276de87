"""The project serves the operations endpoints, the admin, the API schema and GraphQL."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


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
