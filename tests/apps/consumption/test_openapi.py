"""The proxy's `/v1/` endpoints in the project's OpenAPI document: their paths, shapes, headers and errors, a document
that validates, examples the real proxy accepts, answers that match the documented shapes, and the contract
fuzzer still on the REST API alone."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import AsyncClient, Client
from drf_spectacular.validation import validate_schema
from openapi_schema_validator import OAS30Validator
from openapi_schema_validator import validate as validate_instance
from openapi_spec_validator import validate as validate_spec

from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.tenancy.models import Role, Tier
from tests.apps.consumption.conftest import ECHO_DEFINITION
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

CALLS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
ERRORS = {"400", "401", "402", "403", "404", "413", "429", "502", "503", "504"}
ANSWER_HEADERS = {
    "X-Request-ID",
    "X-RateLimit-Limit-Requests",
    "X-RateLimit-Remaining-Requests",
    "X-RateLimit-Reset-Requests",
    "X-RateLimit-Limit-Tokens",
    "X-RateLimit-Remaining-Tokens",
    "X-RateLimit-Reset-Tokens",
    "X-Marketplace-Cost",
}


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def test_the_schema_documents_the_four_endpoints_with_their_responses(schema: dict[str, Any]) -> None:
    # when
    paths = schema["paths"]

    # then
    assert {path for path in paths if path.startswith("/v1/")} == {"/v1/models", *CALLS}
    models = paths["/v1/models"]["get"]
    assert set(models["responses"]) == {"200", "401", "403"}
    assert models["security"] == [{"apiKey": []}]
    listed = models["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    model = schema["components"]["schemas"][listed.rsplit("/", 1)[1]]["properties"]["data"]["items"]["$ref"]
    fields = schema["components"]["schemas"][model.rsplit("/", 1)[1]]["properties"]
    assert {"id", "owned_by", "category", "context_length", "pricing"} <= set(fields)
    for path in CALLS:
        operation = paths[path]["post"]
        responses = operation["responses"]
        assert set(responses) == {"200", *ERRORS}, path
        assert set(responses["200"]["headers"]) == ANSWER_HEADERS, path
        assert "consume" in operation["description"], path
        streamed = "text/event-stream" in responses["200"]["content"]
        assert streamed is (path != "/v1/embeddings"), path
        for status in ERRORS:
            error = responses[status]["content"]["application/json"]["schema"]["$ref"]
            assert error == "#/components/schemas/OpenAIError", (path, status)
        assert "Retry-After" in responses["429"]["headers"] and "Retry-After" in responses["503"]["headers"]
    usage = schema["components"]["schemas"]["ProxyUsage"]
    assert usage["properties"]["cost"]["type"] == "number"
    assert "usage_disputed" not in json.dumps([usage, *(paths[path] for path in ("/v1/models", *CALLS))])


def test_the_document_validates(schema: dict[str, Any]) -> None:
    validate_spec(schema)
    validate_schema(schema)


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_swagger_ui_renders_the_proxy_operations(browser: Any, live_server: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    # when a browser opens the API docs
    browser.get(f"{live_server.url}/api/docs/")

    # then Swagger UI draws the proxy's operations under their tag, without a resolver error
    WebDriverWait(browser, 20).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, '[data-path="/v1/chat/completions"]')
    )
    drawn = {element.get_attribute("data-path") for element in browser.find_elements(By.CSS_SELECTOR, "[data-path]")}
    assert {"/v1/models", *CALLS} <= drawn
    assert "OpenAI-compatible proxy" in browser.find_element(By.ID, "swagger-ui").text
    assert not browser.find_elements(By.CSS_SELECTOR, ".errors-wrapper")


@pytest.fixture
def demo_echo(transactional_db: Any) -> str:
    """`demo-provider/echo` (the model the examples name), and a key of another tenant with rpm and tpm limits."""
    owner = UserFactory(username="demo-owner")
    provider = TenantFactory(slug="demo-provider", trusted_publisher=True, tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=provider, user=owner, role=Role.OWNER)
    _, version, _ = publishing.publish_service(
        publisher=provider, actor=owner, slug="echo", version="1.0.0", values=dict(ECHO_DEFINITION)
    )
    version.refresh_from_db()
    assert version.status == "active"
    consumer_owner = UserFactory(username="demo-consumer-owner")
    consumer = TenantFactory(slug="demo-consumer", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=consumer, user=consumer_owner, role=Role.OWNER)
    return create_api_key(tenant=consumer, actor=consumer_owner, name="docs", rpm_limit=60, tpm_limit=100_000)[1]


def shape(schema: dict[str, Any], reference: str) -> dict[str, Any]:
    """A documented schema, resolvable on its own (its references point into the document's components)."""
    return {"$ref": reference, "components": schema["components"]}


@pytest.mark.django_db(transaction=True)
async def test_the_documented_examples_are_answered_as_documented(schema: dict[str, Any], demo_echo: str) -> None:
    client, auth = AsyncClient(), {"Authorization": f"Bearer {demo_echo}"}
    for path in CALLS:
        # given the operation's example request
        operation = schema["paths"][path]["post"]
        media = operation["requestBody"]["content"]["application/json"]
        example = media["example"]
        validate_instance(example, shape(schema, media["schema"]["$ref"]), cls=OAS30Validator)

        # when the proxy is sent it, as it is and streamed
        response = await client.post(path, example, content_type="application/json", headers=auth)
        streamed = await client.post(path, {**example, "stream": True}, content_type="application/json", headers=auth)

        # then it answers 200 in the documented shape, with the documented headers
        assert response.status_code == 200, (path, response.content)
        documented = operation["responses"]["200"]
        answer = documented["content"]["application/json"]["schema"]["$ref"]
        validate_instance(response.json(), shape(schema, answer), cls=OAS30Validator)
        assert set(documented["headers"]) <= set(response.headers), path
        if path == "/v1/embeddings":
            assert streamed.status_code == 400 and streamed.json()["error"]["param"] == "stream"
        else:
            assert streamed["Content-Type"] == "text/event-stream"
            events = b"".join([chunk async for chunk in streamed.streaming_content])
            assert events.startswith(b"data: {") and events.endswith(b"data: [DONE]\n\n")

    # and the model list too
    models = await client.get("/v1/models", headers=auth)
    listed = schema["paths"]["/v1/models"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    validate_instance(models.json(), shape(schema, listed["$ref"]), cls=OAS30Validator)


def test_an_error_answer_has_the_documented_shape(schema: dict[str, Any], demo_echo: str) -> None:
    # when
    response = Client(HTTP_AUTHORIZATION=f"Bearer {demo_echo}").post(
        "/v1/chat/completions", {"model": "demo-provider/echo"}, content_type="application/json"
    )

    # then
    assert response.status_code == 400
    validate_instance(response.json(), shape(schema, "#/components/schemas/OpenAIError"), cls=OAS30Validator)


def test_the_contract_fuzzer_leaves_the_proxy_out() -> None:
    from tests.contract.support import load_schema, operations

    # given the document as schemathesis loads it
    every = [result.ok() for result in load_schema().get_all_operations()]

    # when
    fuzzed = operations([""])

    # then the proxy is in the document, and not among the operations the contract suite drives
    assert {operation.path for operation in every if operation.path.startswith("/v1/")} == {"/v1/models", *CALLS}
    assert fuzzed and not [operation for operation in fuzzed if operation.path.startswith("/v1/")]
    assert len(fuzzed) == len(every) - 4
