"""The OpenAPI document of the tenancy routes generates without warnings, validates, and documents every route."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import include
from django.urls import path as route
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

TENANCY_PATHS = {
    "/api/v1/tenants/",
    "/api/v1/tenants/{slug}/",
    "/api/v1/tenants/{slug}/tier/",
    "/api/v1/tenants/{slug}/suspend/",
    "/api/v1/tenants/{slug}/reactivate/",
    "/api/v1/tenants/{slug}/deactivate/",
    "/api/v1/tenants/{slug}/members/",
    "/api/v1/tenants/{slug}/members/{member_id}/",
    "/api/v1/tenants/{slug}/quotas/",
    "/api/v1/tenants/{slug}/quotas/{quota_type}/",
    "/api/v1/tenants/{slug}/usage/",
    "/api/v1/tenants/{slug}/audit-log/",
    "/api/v1/sharing/policies/",
    "/api/v1/sharing/policies/{id}/",
    "/api/v1/sharing/requests/",
    "/api/v1/sharing/requests/{id}/",
    "/api/v1/sharing/requests/{id}/approve/",
    "/api/v1/sharing/requests/{id}/reject/",
    "/api/v1/sharing/grants/",
    "/api/v1/sharing/grants/{id}/",
    "/api/v1/sharing/grants/{id}/revoke/",
}


@pytest.fixture(scope="module")
def schema() -> dict:
    """The OpenAPI document of the tenancy routes alone, so that other apps' warnings do not count here."""
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[route("api/v1/", include("apps.tenancy.api.urls"))])
    document = generator.get_schema(request=None, public=True)
    warnings, errors = dict(GENERATOR_STATS._warn_cache), dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert warnings == {} and errors == {}
    validate_schema(document)
    return document


def test_the_project_schema_includes_the_tenancy_routes() -> None:
    # when
    response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")

    # then
    assert response.status_code == 200
    assert set(response.json()["paths"]) >= TENANCY_PATHS


def test_the_schema_documents_every_tenancy_route(schema: dict) -> None:
    # when
    documented = {path for path in schema["paths"] if path.startswith(("/api/v1/tenants/", "/api/v1/sharing/"))}

    # then
    assert documented == TENANCY_PATHS


def test_every_tenancy_operation_documents_its_errors_with_the_envelope(schema: dict) -> None:
    # given
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        if path in TENANCY_PATHS
        for method, operation in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]

    # then
    assert len(operations) == 31
    for path, method, operation in operations:
        responses = operation["responses"]
        assert {"401", "403"} <= set(responses), (method, path)
        assert "404" in responses or path in (
            "/api/v1/tenants/",
            "/api/v1/sharing/policies/",
            "/api/v1/sharing/requests/",
            "/api/v1/sharing/grants/",
        ), (method, path)
        envelope = responses["403"]["content"]["application/json"]["schema"]["$ref"]
        assert envelope == "#/components/schemas/ErrorEnvelope", (method, path)
        if method in ("post", "put", "patch") and "requestBody" in operation:
            assert "400" in responses, (method, path)


def test_list_operations_are_paginated_and_filtered(schema: dict) -> None:
    # when
    audit = schema["paths"]["/api/v1/tenants/{slug}/audit-log/"]["get"]

    # then
    names = {parameter["name"] for parameter in audit["parameters"]}
    assert {"limit", "offset", "action", "object_type", "since", "until"} <= names
    assert audit["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("PaginatedAuditLogList")
