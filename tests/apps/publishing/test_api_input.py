"""Bad input to the publishing API: a 4xx error envelope naming each field by its path, never a 500, and no row
written (malformed JSON, wrong types, unknown fields, out-of-range values, huge or deeply nested bodies)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apps.publishing.models import Service, ServiceVersion, ValidationRun
from apps.tenancy.models import AuditLog
from tests.apps.publishing.test_api import API, definition

BAD_DEFINITIONS: list[tuple[str, dict[str, Any], set[str]]] = [
    ("name is a number", {"name": 123}, {"name"}),
    ("name is null", {"name": None}, {"name"}),
    ("name too long", {"name": "n" * 201}, {"name"}),
    ("description too short", {"description": "short"}, {"description"}),
    ("unknown category", {"category": "poetry"}, {"category"}),
    ("tags is a string", {"tags": "demo"}, {"tags"}),
    ("a tag is a number", {"tags": ["ok", 7]}, {"tags[1]"}),
    ("too many tags", {"tags": [f"t{i}" for i in range(21)]}, {"tags"}),
    ("a tag too long", {"tags": ["x" * 51]}, {"tags[0]"}),
    ("a tag with a comma", {"tags": ["a,b"]}, {"tags[0]"}),
    (
        "capability without a name",
        {"capabilities": [{"name": "ok"}, {"description": "no name"}]},
        {"capabilities[1].name"},
    ),
    ("capabilities is an object", {"capabilities": {"name": "x"}}, {"capabilities"}),
    ("endpoint is a string", {"endpoint": "https://x"}, {"endpoint"}),
    ("endpoint.url is a number", {"endpoint.url": 5}, {"endpoint.url"}),
    ("endpoint.url is not a URL", {"endpoint.url": "not a url"}, {"endpoint.url"}),
    ("endpoint.url is ftp", {"endpoint.url": "ftp://example.com/v1"}, {"endpoint.url"}),
    ("unknown protocol", {"endpoint.protocol": "grpc"}, {"endpoint.protocol"}),
    ("auth kind unknown", {"endpoint.auth": {"kind": "oauth"}}, {"endpoint.auth.kind"}),
    ("secret is a number", {"endpoint.auth": {"kind": "bearer", "secret": 12345}}, {"endpoint.auth.secret"}),
    ("secret without auth", {"endpoint.auth": {"secret": "s3cr3t-value"}}, {"endpoint.auth.kind"}),
    ("auth without secret", {"endpoint.auth": {"kind": "api_key"}}, {"endpoint.auth.secret"}),
    ("pricing missing", {"pricing": ...}, {"pricing"}),
    ("pricing.model missing", {"pricing.model": ...}, {"pricing.model"}),
    ("price is a boolean", {"pricing.input_per_mtok": True}, {"pricing.input_per_mtok"}),
    ("price is a list", {"pricing.input_per_mtok": [1]}, {"pricing.input_per_mtok"}),
    ("price is not a number", {"pricing.input_per_mtok": "cheap"}, {"pricing.input_per_mtok"}),
    ("price is NaN", {"pricing.output_per_mtok": "NaN"}, {"pricing.output_per_mtok"}),
    ("price too precise", {"pricing.input_per_mtok": "0.00000000001"}, {"pricing.input_per_mtok"}),
    ("price too large", {"pricing.per_request": "1e400"}, {"pricing.per_request"}),
    ("currency lower case", {"pricing.currency": "usd"}, {"pricing.currency"}),
    ("availability above 100", {"sla.availability": "100.5"}, {"sla.availability"}),
    ("latency is a string", {"sla.max_latency_ms": "100"}, {"sla.max_latency_ms"}),
    ("latency is a float", {"sla.max_latency_ms": 1.5}, {"sla.max_latency_ms"}),
    ("timeout is zero", {"sla.timeout_ms": 0}, {"sla.timeout_ms"}),
    ("unknown support level", {"sla.support_level": "gold"}, {"sla.support_level"}),
    ("gdpr is a string", {"compliance.gdpr": "yes"}, {"compliance.gdpr"}),
    ("hipaa is a number", {"compliance.hipaa": 1}, {"compliance.hipaa"}),
    ("residency is a string", {"compliance.data_residency": "FR"}, {"compliance.data_residency"}),
    ("unknown compliance level", {"compliance.level": "secret"}, {"compliance.level"}),
    ("context length too large", {"context_length": 2**40}, {"context_length"}),
    ("context length is a boolean", {"context_length": True}, {"context_length"}),
    ("openapi is a list", {"openapi": []}, {"openapi"}),
    ("NUL in an OpenAPI value", {"openapi": {"info": {"title": "a\u0000b"}}}, {"openapi"}),
    ("NUL in an OpenAPI key", {"openapi": {"x\u0000": 1}}, {"openapi"}),
    (
        "NUL in a capability parameter",
        {"capabilities": [{"name": "c", "parameters": {"p": ["\u0000"]}}]},
        {"capabilities[0].parameters"},
    ),
    ("NUL in the name", {"name": "a\u0000b"}, {"name"}),
    ("version number too large", {"version": "99999999999.0.0"}, {"version"}),
    ("version is a number", {"version": 1}, {"version"}),
    ("version missing", {"version": ...}, {"version"}),
    ("invalid slug", {"slug": "Not A Slug"}, {"slug"}),
    ("unknown top-level field", {"owner": "someone-else"}, {"owner"}),
    (
        "unknown nested fields",
        {"endpoint.headers": {}, "pricing.discount": "1"},
        {"endpoint.headers", "pricing.discount"},
    ),
    ("read-only status", {"status": "active"}, {"status"}),
    ("several errors at once", {"name": 1, "sla.timeout_ms": -1, "extra": 1}, {"name", "sla.timeout_ms", "extra"}),
]


def _rows() -> tuple[int, ...]:
    return (
        Service.objects.count(),
        ServiceVersion.objects.count(),
        ValidationRun.objects.count(),
        AuditLog.objects.count(),
    )


@pytest.fixture
def alice(publisher: Any, publisher_admin: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(publisher_admin)
    return client


@pytest.mark.parametrize(("case", "changes", "paths"), BAD_DEFINITIONS, ids=[c[0] for c in BAD_DEFINITIONS])
def test_bad_definitions_are_a_400_naming_each_field_path(
    alice: APIClient, case: str, changes: dict[str, Any], paths: set[str]
) -> None:
    # given
    before = _rows()
    # when
    response = alice.post(API, definition(**changes), format="json")
    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]["fields"]) == paths
    assert _rows() == before


@pytest.mark.parametrize(("case", "changes", "paths"), BAD_DEFINITIONS[:12], ids=[c[0] for c in BAD_DEFINITIONS[:12]])
def test_the_dry_run_and_new_versions_refuse_the_same_input(
    alice: APIClient, case: str, changes: dict[str, Any], paths: set[str]
) -> None:
    service_id = alice.post(API, definition(), format="json").json()["service"]["id"]
    before = _rows()
    body = definition(**changes)
    assert alice.post(f"{API}validate/", body, format="json").status_code == 400
    body.pop("slug")
    response = alice.post(
        f"{API}{service_id}/versions/", {**body, "version": body.get("version", "2.0.0")}, format="json"
    )
    assert response.status_code == 400
    assert _rows() == before


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b'{"name": "x",', "parse_error"),
        (b"{'single': 'quotes'}", "parse_error"),
        (b'{"pricing": {"input_per_mtok": NaN}}', "parse_error"),
        (b"", "validation_error"),
        (b"[1, 2, 3]", "validation_error"),
        (b'"a string"', "validation_error"),
        (b"null", "validation_error"),
        (b"\xff\xfe\x00", "parse_error"),
    ],
)
def test_malformed_json_is_a_400(alice: APIClient, payload: bytes, code: str) -> None:
    before = _rows()
    response = alice.generic("POST", API, payload, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert _rows() == before


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"capabilities": [{"name": "chat", "parameters": {"temperature": "NUMBER"}}]}, "capabilities[0].parameters"),
        ({"openapi": {"openapi": "3.0.3", "x-limits": ["NUMBER"]}}, "openapi"),
    ],
)
@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_numbers_beyond_range_in_free_json_are_a_400_naming_the_field(
    alice: APIClient, changes: dict[str, Any], path: str, number: str
) -> None:
    # given: a body with a number json reads as infinity, which PostgreSQL's jsonb refuses (was a 500)
    payload = json.dumps(definition(**changes)).replace('"NUMBER"', number)
    before = _rows()
    # when
    responses = [
        alice.generic("POST", url, payload, content_type="application/json") for url in (API, f"{API}validate/")
    ]
    # then
    for response in responses:
        assert response.status_code == 400, response.content
        assert set(response.json()["error"]["details"]["fields"]) == {path}
    assert _rows() == before


def test_a_body_that_is_not_json_is_a_415(alice: APIClient) -> None:
    response = alice.post(API, {"name": "x"}, format="multipart")
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@override_settings(MARKETPLACE_PUBLISHING={"MAX_SERVICE_BYTES": 4096})
def test_a_body_over_the_size_limit_is_a_413_before_parsing(alice: APIClient) -> None:
    before = _rows()
    body = definition(openapi={"openapi": "3.0.3", "x-padding": "p" * 5000})
    for url in (API, f"{API}validate/"):
        response = alice.post(url, body, format="json")
        assert response.status_code == 413
        error = response.json()["error"]
        assert error["code"] == "payload_too_large" and error["details"]["limit"] == 4096
    assert alice.post(API, definition(), format="json").status_code == 202
    assert _rows()[0] == before[0] + 1


def test_the_default_size_limit_applies(alice: APIClient) -> None:
    body = json.dumps(definition(openapi={"x-padding": "p" * (600 * 1024)}))
    response = alice.generic("POST", API, body, content_type="application/json")
    assert response.status_code == 413
    assert Service.objects.count() == 0


def test_deeply_nested_json_is_a_400_not_a_crash(alice: APIClient) -> None:
    depth = 100_000
    body = '{"openapi": ' + "[" * depth + "]" * depth + "}"
    response = alice.generic("POST", API, body, content_type="application/json")
    assert response.status_code == 400
    assert Service.objects.count() == 0


def test_action_bodies_are_strict(alice: APIClient, staff: Any) -> None:
    service_id = alice.post(API, definition(), format="json").json()["service"]["id"]
    status = ServiceVersion.objects.get().status
    response = alice.post(f"{API}{service_id}/deprecate/", {"version": "1.0.0", "force": True}, format="json")
    assert response.status_code == 400 and set(response.json()["error"]["details"]["fields"]) == {"force"}
    response = alice.post(f"{API}{service_id}/deprecate/", {"version": 1}, format="json")
    assert response.status_code == 400 and set(response.json()["error"]["details"]["fields"]) == {"version"}
    operator = APIClient()
    operator.force_authenticate(staff)
    response = operator.post(f"{API}{service_id}/suspend/", {"reason": ["list"]}, format="json")
    assert response.status_code == 400 and set(response.json()["error"]["details"]["fields"]) == {"reason"}
    assert ServiceVersion.objects.get().status == status


def test_unknown_ids_are_404s(alice: APIClient) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    assert alice.get(f"{API}{missing}/").status_code == 404
    assert alice.post(f"{API}{missing}/deprecate/", format="json").status_code == 404
    assert alice.get(f"{API}not-a-uuid/").status_code == 404
    response = alice.post(f"{API}validate/", definition(service="not-a-uuid"), format="json")
    assert response.status_code == 400 and set(response.json()["error"]["details"]["fields"]) == {"service"}


@pytest.mark.parametrize(
    ("query", "paths"),
    [
        ({"limit": "abc"}, {"limit"}),
        ({"limit": "0"}, {"limit"}),
        ({"offset": "-1"}, {"offset"}),
        ({"category": "chat,poetry"}, {"category[1]"}),
        ({"pricing_model": "cheap"}, {"pricing_model[0]"}),
        ({"max_price": "-1"}, {"max_price"}),
        ({"max_price": "lots"}, {"max_price"}),
        ({"min_availability": "101"}, {"min_availability"}),
        ({"max_latency_ms": "fast"}, {"max_latency_ms"}),
        ({"residency": "FRA"}, {"residency[0]"}),
        ({"sort": "random"}, {"sort"}),
        ({"status": "gone"}, {"status[0]"}),
        ({"publisher": "not a slug"}, {"publisher"}),
        ({"search": "x" * 201}, {"search"}),
        ({"categroy": "chat"}, {"categroy"}),
    ],
)
def test_bad_discovery_queries_are_400s(alice: APIClient, query: dict[str, str], paths: set[str]) -> None:
    response = alice.get(API, query)
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]["fields"]) == paths


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"tags": ",".join(f"t{i}" for i in range(8000))}, "tags"),
        ({"category": ",".join(["poetry"] * 5000)}, "category"),
        ({"residency": ["XX"] * 51}, "residency"),
        ({"tags": "x" * 101}, "tags"),
    ],
)
def test_list_filters_beyond_their_bounds_are_one_error_naming_them(
    alice: APIClient, query: dict[str, Any], field: str
) -> None:
    response = alice.get(API, query)
    assert response.status_code == 400
    (messages,) = response.json()["error"]["details"]["fields"].values()
    assert set(response.json()["error"]["details"]["fields"]) == {field} and len(messages) == 1


def test_odd_but_valid_searches_do_not_fail(alice: APIClient) -> None:
    for text in ['"unterminated', "-", "or or and", "!!!", "a & b | c", "' OR 1=1 --", "日本語", "\\"]:
        response = alice.get(API, {"search": text})
        assert response.status_code == 200, (text, response.content)


@pytest.mark.parametrize(
    ("document", "code"),
    [
        ({"x": 1}, "INVALID_OPENAPI"),
        ({"x": [[]]}, "INVALID_OPENAPI"),
        ({"openapi": "3.0.3"}, "INVALID_OPENAPI"),
        ({"x": json.loads("[" * 600 + "]" * 600)}, "OPENAPI_TOO_DEEP"),
    ],
)
def test_a_bad_openapi_document_is_reported_not_a_crash(alice: APIClient, document: dict[str, Any], code: str) -> None:
    response = alice.post(f"{API}validate/", definition(openapi=document), format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["valid"] is False
    openapi = next(step for step in body["steps"] if step["name"] == "openapi")
    assert openapi["outcome"] == "failed" and openapi["messages"][0]["code"] == code
    assert openapi["messages"][0]["message"]
