"""The OpenAPI check resolves only the document's own references (no file, no URL, through every surface), quotes the
document only briefly, and bounds its work on pathological documents."""

from __future__ import annotations

import gc
import json
import time
import weakref
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from apps.publishing.models import ServiceVersion, ValidationStep
from apps.publishing.validation import openapi_issues
from tests.apps.gateway.support import data, gql, logged_in
from tests.apps.publishing.test_api import API, client_for, definition

pytestmark = pytest.mark.django_db

PASSWD_LINE = "root:x:0:0"
VALIDATE = """
mutation($definition: GenericScalar!) {
  serviceValidate(definition: $definition) { valid steps { name outcome messages } errors { field code } }
}
"""


def document(**components: Any) -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "Chat", "version": "1.0.0"},
        "paths": {},
        "components": {"schemas": components},
    }


def found(issues: list[Any]) -> set[tuple[str, str]]:
    return {(issue.code, issue.field) for issue in issues}


def chain(keyword: str, levels: int) -> dict[str, Any]:
    """Schemas S0…Sn, each `keyword` of two references to the next: 2ⁿ paths through a few hundred bytes (and a
    default on S0 that would be validated along each of them)."""
    schemas: dict[str, Any] = {
        f"S{level}": {keyword: [{"$ref": f"#/components/schemas/S{level + 1}"}] * 2} for level in range(levels)
    }
    schemas["S0"]["default"] = {"a": "x"}
    schemas[f"S{levels}"] = {"type": "object", "properties": {"a": {"type": "string"}}}
    return document(**schemas)


@pytest.fixture
def alice(publisher: Any, publisher_admin: Any) -> APIClient:
    return client_for(publisher_admin)


def test_a_file_reference_is_refused_without_reading_the_file() -> None:
    # when
    issues = openapi_issues(document(Pet={"$ref": "file:///etc/passwd"}))
    # then
    assert found(issues) == {("EXTERNAL_REF", "openapi.components.schemas.Pet.$ref")}
    assert PASSWD_LINE not in json.dumps([issue.as_dict() for issue in issues])


@pytest.mark.parametrize("redirect", [False, True])
@pytest.mark.parametrize("path", ["/x", "/x#/Pet"])
def test_a_url_reference_is_refused_without_a_request(local_upstream: Any, path: str, redirect: bool) -> None:
    # given: a local server that would answer a schema, or redirect to another of its URLs
    local_upstream.body = {"type": "string"}
    if redirect:
        local_upstream.status, local_upstream.headers_sent = 302, {"Location": "/secret"}
    reference = local_upstream.url + path
    # when
    issues = openapi_issues(document(Pet={"$ref": reference}, Owner={"$dynamicRef": reference}))
    # then
    assert found(issues) == {
        ("EXTERNAL_REF", "openapi.components.schemas.Pet.$ref"),
        ("EXTERNAL_REF", "openapi.components.schemas.Owner.$dynamicRef"),
    }
    assert local_upstream.requests == []


def test_a_reference_relative_to_another_document_is_refused() -> None:
    assert found(openapi_issues(document(Pet={"$ref": "other.yaml#/Pet"}))) == {
        ("EXTERNAL_REF", "openapi.components.schemas.Pet.$ref")
    }


def test_references_inside_the_document_still_resolve() -> None:
    # given
    valid = document(Pet={"type": "object", "properties": {"owner": {"$ref": "#/components/schemas/Owner"}}})
    valid["components"]["schemas"]["Owner"] = {"type": "string"}
    broken = document(Pet={"$ref": "#/components/schemas/Nowhere"})
    # then
    assert {issue.code for issue in openapi_issues(valid)} <= {"OPENAPI_NO_DESCRIPTION", "OPENAPI_NO_SERVERS"}
    assert found(openapi_issues(broken)) == {("INVALID_OPENAPI", "openapi")}


def test_messages_quote_the_document_briefly_and_escaped() -> None:
    # given: the validator's message would repeat the whole document
    padding = "\x1b[31m" + "p" * 5000
    issues = openapi_issues({**document(Pet={"$ref": "#/nowhere"}), "x-padding": padding})
    # then
    (issue,) = issues
    assert len(issue.message) <= 160 and "ppppp" not in issue.message and "\x1b" not in issue.message


def test_nesting_beyond_the_limit_is_refused_by_path() -> None:
    nested: Any = "leaf"
    for _ in range(100):
        nested = [nested]
    issues = openapi_issues({**document(), "x-deep": nested})
    assert [(issue.code, issue.field[:16]) for issue in issues] == [("OPENAPI_TOO_DEEP", "openapi.x-deep[0")]


@pytest.mark.parametrize(
    "pathological",
    [
        pytest.param(chain("allOf", 40), id="allOf chain"),
        pytest.param(chain("anyOf", 40), id="anyOf chain with a default"),
        pytest.param(
            document(Pets={"type": "array", "uniqueItems": True, "default": [{"a": i} for i in range(15_000)]}),
            id="uniqueItems over a large default",
        ),
        pytest.param(
            document(Name={"type": "string", "pattern": "^(a+)+$", "default": "a" * 64 + "!"}),
            id="backtracking pattern on a default",
        ),
    ],
)
@pytest.mark.timeout(60)
def test_pathological_documents_are_answered_quickly(pathological: dict[str, Any]) -> None:
    # when
    started = time.perf_counter()
    issues = openapi_issues(pathological)
    # then: the same documents held a worker for minutes
    assert time.perf_counter() - started < 5
    assert {issue.code for issue in issues} <= {"OPENAPI_TOO_COMPLEX", "OPENAPI_NO_DESCRIPTION", "OPENAPI_NO_SERVERS"}


@override_settings(MARKETPLACE_PUBLISHING={"OPENAPI_MAX_STEPS": 100})
def test_the_step_budget_is_a_setting() -> None:
    assert found(openapi_issues(chain("allOf", 8))) == {("OPENAPI_TOO_COMPLEX", "openapi")}


def test_a_validated_document_is_not_kept_in_memory() -> None:
    # given: a document the caller holds the only reference to
    class Document(dict):
        pass

    held = Document(document(Pet={"type": "string"}))
    gone = weakref.ref(held)
    # when
    openapi_issues(held)
    del held
    gc.collect()
    # then
    assert gone() is None


# --- Every surface ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_rest_dry_run_reports_external_references_without_following_them(
    alice: APIClient, local_upstream: Any
) -> None:
    # given
    openapi = document(Pet={"$ref": "file:///etc/passwd"}, Owner={"$ref": f"{local_upstream.url}/owner"})
    # when
    response = alice.post(f"{API}validate/", definition(openapi=openapi), format="json")
    # then
    assert response.status_code == 200
    step = next(step for step in response.json()["steps"] if step["name"] == "openapi")
    assert step["outcome"] == "failed"
    assert {(m["code"], m["field"]) for m in step["messages"]} == {
        ("EXTERNAL_REF", "openapi.components.schemas.Pet.$ref"),
        ("EXTERNAL_REF", "openapi.components.schemas.Owner.$ref"),
    }
    assert PASSWD_LINE not in response.content.decode()
    assert local_upstream.requests == []


@pytest.mark.django_db(transaction=True)
def test_publishing_fails_validation_without_storing_the_file(alice: APIClient, local_upstream: Any) -> None:
    # given
    openapi = document(Pet={"$ref": "file:///etc/passwd"}, Owner={"$ref": f"{local_upstream.url}/owner"})
    # when
    response = alice.post(API, definition(openapi=openapi), format="json")
    # then
    assert response.status_code == 202
    assert response.json()["version"]["status"] == "failed_validation"
    assert PASSWD_LINE not in response.content.decode()
    stored = ServiceVersion.objects.get().review_notes + json.dumps(
        list(ValidationStep.objects.values_list("messages", flat=True))
    )
    assert "EXTERNAL_REF" in stored and PASSWD_LINE not in stored
    assert local_upstream.requests == []


@pytest.mark.django_db(transaction=True)
def test_the_graphql_dry_run_reports_external_references_without_following_them(
    publisher: Any, publisher_admin: Any, local_upstream: Any
) -> None:
    # given
    openapi = document(Pet={"$ref": "file:///etc/passwd"}, Owner={"$ref": f"{local_upstream.url}/owner"})
    # when
    response = gql(logged_in(publisher_admin), VALIDATE, {"definition": definition(openapi=openapi)})
    # then
    result = data(response)["serviceValidate"]
    step = next(step for step in result["steps"] if step["name"] == "openapi")
    assert result["valid"] is False and step["outcome"] == "failed"
    assert {m["code"] for m in step["messages"]} == {"EXTERNAL_REF"}
    assert PASSWD_LINE not in response.content.decode()
    assert local_upstream.requests == []
