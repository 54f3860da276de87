"""The publishing REST API: publish (202 with the pipeline's outcome), versions, status, approval and the other
lifecycle actions, detail, retire, dry run and discovery over HTTP."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.publishing.models import Service, ServiceVersion, Status, ValidationRun
from apps.tenancy.models import AuditLog, Role
from tests.apps.publishing.test_discovery import make_version
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

API = "/api/v1/services/"

DEFINITION: dict[str, Any] = {
    "slug": "echo-chat",
    "version": "1.0.0",
    "name": "Echo Chat",
    "description": "A deterministic chat model for demos and tests.",
    "category": "chat",
    "tags": ["demo", "chat"],
    "capabilities": [{"name": "chat", "description": "Multi-turn chat", "parameters": {"max_tokens": 1024}}],
    "endpoint": {"protocol": "echo", "model": "echo-1"},
    "pricing": {"model": "per_token", "input_per_mtok": "0.50", "output_per_mtok": "1.50", "currency": "USD"},
    "sla": {"availability": "99.5", "max_latency_ms": 1000, "timeout_ms": 30000, "support_level": "basic"},
    "compliance": {"level": "public", "certifications": [], "data_residency": ["US"], "gdpr": False, "hipaa": False},
    "context_length": 8192,
    "modalities": ["text"],
}


def definition(**changes: Any) -> dict[str, Any]:
    """The definition with top-level keys replaced and dotted keys (`"pricing.model"`) set inside."""
    body = copy.deepcopy(DEFINITION)
    for key, value in changes.items():
        target = body
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        if value is ...:
            target.pop(leaf, None)
        else:
            target[leaf] = value
    return body


def client_for(user: Any) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def alice(publisher: Any, publisher_admin: Any) -> APIClient:
    """The publisher's owner."""
    return client_for(publisher_admin)


@pytest.fixture
def carol(db: Any) -> APIClient:
    """The owner of a consumer tenant."""
    tenant = TenantFactory(slug="initech")
    user = UserFactory(username="carol")
    MembershipFactory(tenant=tenant, user=user, role=Role.OWNER)
    return client_for(user)


@pytest.fixture
def operator(staff: Any) -> APIClient:
    return client_for(staff)


def publish(client: APIClient, **changes: Any) -> dict[str, Any]:
    response = client.post(API, definition(**changes), format="json")
    assert response.status_code == 202, response.json()
    return response.json()


# --- Publishing ----------------------------------------------------------------------------------------------


def test_publish_answers_202_with_the_pipeline_outcome(alice: APIClient, publisher: Any) -> None:
    # when
    response = alice.post(API, definition(), format="json")
    # then
    assert response.status_code == 202
    body = response.json()
    assert body["service"]["model_id"] == "acme/echo-chat"
    assert body["service"]["publisher"]["slug"] == "acme"
    version = body["version"]
    assert version["status"] == "active" and version["version"] == "1.0.0"
    assert version["model_id"] == "acme/echo-chat@1.0.0"
    assert version["pricing"] == {
        "model": "per_token",
        "input_per_mtok": "0.5",
        "output_per_mtok": "1.5",
        "cached_input_per_mtok": None,
        "per_request": None,
        "currency": "USD",
    }
    assert version["sla"]["availability"] == "99.5"
    assert version["capabilities"] == DEFINITION["capabilities"]
    run = body["validation_run"]
    assert run["outcome"] == "passed" and run["result_status"] == "active"
    assert [step["name"] for step in run["steps"]] == ["schema", "openapi", "policy", "probe", "registry", "approval"]
    assert response["Location"] == f"/api/v1/services/{body['service']['id']}/status/?version=1.0.0"
    stored = ServiceVersion.objects.get()
    assert stored.service.publisher == publisher and stored.tags == ["demo", "chat"]


def test_a_failing_definition_is_accepted_and_fails_validation_with_paths(alice: APIClient) -> None:
    body = publish(alice, **{"compliance.data_residency": ["DE", "XX"]})
    assert body["version"]["status"] == "failed_validation"
    step = body["validation_run"]["steps"][-1]
    assert step["name"] == "schema" and step["outcome"] == "failed"
    assert {(m["code"], m["field"]) for m in step["messages"]} == {
        ("INVALID_COUNTRY_CODE", "compliance.data_residency[1]"),
        ("GDPR_REQUIRED", "compliance.gdpr"),
    }


def test_publish_against_a_real_upstream_probes_it(alice: APIClient, local_upstream: Any) -> None:
    body = publish(
        alice,
        **{
            "endpoint": {
                "url": local_upstream.url + "/v1",
                "protocol": "openai",
                "model": "local-model",
                "auth": {"kind": "bearer", "secret": "probe-token-123"},
            }
        },
    )
    assert body["version"]["status"] == "active"
    assert body["version"]["endpoint"] == {
        "url": local_upstream.url + "/v1",
        "protocol": "openai",
        "model": "local-model",
        "auth": {"kind": "bearer"},
    }
    probe = next(step for step in body["validation_run"]["steps"] if step["name"] == "probe")
    assert probe["messages"][0]["code"] == "PROBE_LATENCY"
    path, headers = local_upstream.requests[0]
    assert path == "/v1/models" and headers["Authorization"] == "Bearer probe-token-123"


def test_only_publisher_admins_publish_and_a_tenant_is_needed(publisher: Any, db: Any) -> None:
    member = UserFactory(username="mia")
    MembershipFactory(tenant=publisher, user=member, role=Role.MEMBER)
    response = client_for(member).post(API, definition(), format="json")
    assert response.status_code == 403
    loner = client_for(UserFactory(username="loner"))
    assert loner.post(API, definition(), format="json").status_code == 403
    two_hats = UserFactory(username="two-hats")
    MembershipFactory(tenant=publisher, user=two_hats, role=Role.ADMIN)
    MembershipFactory(tenant=TenantFactory(slug="other"), user=two_hats, role=Role.ADMIN)
    response = client_for(two_hats).post(API, definition(), format="json")
    assert response.status_code == 400 and "X-Tenant" in response.json()["error"]["details"]["fields"]
    response = client_for(two_hats).post(API, definition(), format="json", HTTP_X_TENANT="acme")
    assert response.status_code == 202
    assert APIClient().post(API, definition(), format="json").status_code == 401
    assert Service.objects.count() == 1


def test_a_duplicate_slug_is_a_409(alice: APIClient) -> None:
    publish(alice)
    response = alice.post(API, definition(version="2.0.0"), format="json")
    assert response.status_code == 409
    assert ServiceVersion.objects.count() == 1


# --- Versions and status -------------------------------------------------------------------------------------


def test_new_versions_must_increase_and_run_the_pipeline(alice: APIClient, carol: APIClient) -> None:
    service_id = publish(alice)["service"]["id"]
    body = definition(version="1.1.0", name="Echo Chat Plus")
    del body["slug"]
    response = alice.post(f"{API}{service_id}/versions/", body, format="json")
    assert response.status_code == 202
    assert response.json()["version"]["status"] == "active"
    response = alice.post(f"{API}{service_id}/versions/", {**body, "version": "1.0.5"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"]["issues"][0]["code"] == "VERSION_NOT_INCREMENTED"
    assert "version" in error["details"]["fields"]
    response = alice.post(f"{API}{service_id}/versions/", {**body, "version": "2.0.0-rc.1"}, format="json")
    assert response.json()["error"]["details"]["issues"][0]["code"] == "INVALID_VERSION"
    # a consumer may see the service but not add versions to it
    assert carol.post(f"{API}{service_id}/versions/", {**body, "version": "3.0.0"}, format="json").status_code == 403
    versions = alice.get(f"{API}{service_id}/versions/").json()
    assert [v["version"] for v in versions] == ["1.1.0", "1.0.0"]


def test_status_shows_runs_and_steps_to_the_publisher_only(
    alice: APIClient, carol: APIClient, operator: APIClient
) -> None:
    service_id = publish(alice)["service"]["id"]
    body = alice.get(f"{API}{service_id}/status/").json()
    assert body["version"]["status"] == "active" and body["version"]["version"] == "1.0.0"
    assert len(body["validation_runs"]) == 1
    assert [s["outcome"] for s in body["validation_runs"][0]["steps"]] == ["passed"] * 6
    assert operator.get(f"{API}{service_id}/status/").status_code == 200
    assert carol.get(f"{API}{service_id}/status/").status_code == 403
    assert alice.get(f"{API}{service_id}/status/", {"version": "9.9.9"}).status_code == 404


@pytest.mark.parametrize("version", ["1.0\u0000", "9" * 40])
def test_a_status_version_the_database_cannot_hold_is_a_400_naming_it(alice: APIClient, version: str) -> None:
    # given (found by the contract fuzzer: a NUL character in `version` was a 500)
    service_id = publish(alice)["service"]["id"]

    # when
    response = alice.get(f"{API}{service_id}/status/", {"version": version})

    # then
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["details"]["fields"]) == {"version"}


def test_consumers_see_servable_versions_without_the_endpoint_url(
    alice: APIClient, carol: APIClient, publisher: Any
) -> None:
    make_version(publisher, "svc", "1.0.0", endpoint_url="https://upstream.example/v1", protocol="openai")
    make_version(publisher, "svc", "1.1.0", Status.DEPRECATED, endpoint_url="https://upstream.example/v1")
    make_version(publisher, "svc", "2.0.0", Status.PENDING_APPROVAL, endpoint_url="https://upstream.example/v1")
    service_id = Service.objects.get().pk
    detail = carol.get(f"{API}{service_id}/").json()
    assert [v["version"] for v in detail["versions"]] == ["1.1.0", "1.0.0"]
    assert {v["endpoint"]["url"] for v in detail["versions"]} == {None}
    own = alice.get(f"{API}{service_id}/").json()
    assert [v["version"] for v in own["versions"]] == ["2.0.0", "1.1.0", "1.0.0"]
    assert own["versions"][0]["endpoint"]["url"] == "https://upstream.example/v1"
    listed = carol.get(API).json()["results"]
    assert [(row["slug"], row["version"], row["endpoint"]["url"]) for row in listed] == [("svc", "1.0.0", None)]


# --- Approval and lifecycle ----------------------------------------------------------------------------------


def test_approval_flow_through_the_api(alice: APIClient, carol: APIClient, operator: APIClient) -> None:
    # given: a confidential service waits for approval and is invisible to consumers
    body = publish(alice, **{"compliance.level": "confidential", "compliance.certifications": ["SOC2"]})
    service_id = body["service"]["id"]
    assert body["version"]["status"] == "pending_approval"
    assert carol.get(API).json()["count"] == 0
    assert carol.get(f"{API}{service_id}/").status_code == 404
    # when: the publisher cannot approve itself; staff can
    assert alice.post(f"{API}{service_id}/approve/", {}, format="json").status_code == 403
    response = operator.post(f"{API}{service_id}/approve/", {"notes": "reviewed"}, format="json")
    # then
    assert response.status_code == 200 and response.json()["status"] == "active"
    assert [row["slug"] for row in carol.get(API).json()["results"]] == ["echo-chat"]
    again = operator.post(f"{API}{service_id}/approve/", {}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["details"]["allowed"] == ["deprecated", "suspended", "retired"]


def test_rejection_needs_notes_and_reaches_the_publisher(alice: APIClient, operator: APIClient) -> None:
    service_id = publish(alice, **{"sla.support_level": "enterprise", "sla.availability": "99.99"})["service"]["id"]
    response = operator.post(f"{API}{service_id}/reject/", {}, format="json")
    assert response.status_code == 400 and "notes" in response.json()["error"]["details"]["fields"]
    response = operator.post(f"{API}{service_id}/reject/", {"notes": "No support contract."}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    status = alice.get(f"{API}{service_id}/status/").json()["version"]
    assert status == {**status, "status": "rejected", "review_notes": "No support contract."}


def test_deprecate_suspend_reactivate_retire(alice: APIClient, carol: APIClient, operator: APIClient) -> None:
    service_id = publish(alice)["service"]["id"]
    url = f"{API}{service_id}"
    assert alice.post(f"{url}/deprecate/", format="json").json()["status"] == "deprecated"
    assert alice.post(f"{url}/reactivate/", {"version": "1.0.0"}, format="json").json()["status"] == "active"
    assert alice.post(f"{url}/suspend/", {"reason": "abuse"}, format="json").status_code == 403
    assert carol.post(f"{url}/deprecate/", format="json").status_code == 403
    suspended = operator.post(f"{url}/suspend/", {"reason": "abuse report"}, format="json").json()
    assert suspended["status"] == "suspended" and suspended["suspension_reason"] == "abuse report"
    assert alice.post(f"{url}/reactivate/", format="json").status_code == 403
    assert operator.post(f"{url}/reactivate/", format="json").json()["status"] == "active"
    assert alice.post(f"{url}/retire/", {"version": "4.0.0"}, format="json").status_code == 404
    assert alice.post(f"{url}/retire/", format="json").json()["status"] == "retired"
    response = alice.post(f"{url}/retire/", {"version": "1.0.0"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "invalid_transition"
    actions = set(AuditLog.objects.values_list("action", flat=True))
    assert {"service_version_deprecated", "service_version_suspended", "service_version_retired"} <= actions


def test_delete_retires_every_live_version(alice: APIClient, carol: APIClient, publisher: Any) -> None:
    make_version(publisher, "svc", "1.0.0")
    make_version(publisher, "svc", "1.1.0", Status.DEPRECATED)
    make_version(publisher, "svc", "2.0.0", Status.PENDING_APPROVAL)
    service_id = Service.objects.get().pk
    assert carol.delete(f"{API}{service_id}/").status_code == 403
    response = alice.delete(f"{API}{service_id}/")
    assert response.status_code == 200
    body = response.json()
    assert body["retired_versions"] == 2
    assert [(v["version"], v["status"]) for v in body["service"]["versions"]] == [
        ("2.0.0", "pending_approval"),
        ("1.1.0", "retired"),
        ("1.0.0", "retired"),
    ]
    assert carol.get(f"{API}{service_id}/").status_code == 404


# --- Dry run ---------------------------------------------------------------------------------------------


def _row_counts() -> tuple[int, ...]:
    return (
        Service.objects.count(),
        ServiceVersion.objects.count(),
        ValidationRun.objects.count(),
        AuditLog.objects.count(),
    )


def test_dry_run_reports_steps_and_writes_nothing(alice: APIClient, carol: APIClient) -> None:
    before = _row_counts()
    response = carol.post(f"{API}validate/", definition(), format="json")
    assert response.status_code == 200
    assert response.json() == {
        "valid": True,
        "steps": [
            {"name": "schema", "outcome": "passed", "messages": []},
            {"name": "openapi", "outcome": "passed", "messages": []},
            {"name": "policy", "outcome": "passed", "messages": []},
        ],
    }
    failing = alice.post(
        f"{API}validate/", definition(**{"compliance.data_residency": ["KP"], "pricing.model": "free"}), format="json"
    ).json()
    assert failing["valid"] is False
    codes = {step["name"]: [m["code"] for m in step["messages"]] for step in failing["steps"]}
    assert codes["schema"] == ["INCONSISTENT_PRICING", "INCONSISTENT_PRICING"]
    assert codes["policy"] == ["SANCTIONED_RESIDENCY"]
    assert _row_counts() == before


def test_dry_run_of_a_next_version_checks_the_increment(alice: APIClient, carol: APIClient) -> None:
    service_id = publish(alice)["service"]["id"]
    before = _row_counts()
    body = alice.post(f"{API}validate/", definition(service=service_id), format="json").json()
    assert body["valid"] is False and body["steps"][0]["messages"][0]["code"] == "VERSION_NOT_INCREMENTED"
    body = alice.post(f"{API}validate/", definition(service=service_id, version="1.0.1"), format="json").json()
    assert body["valid"] is True
    assert carol.post(f"{API}validate/", definition(service=service_id), format="json").status_code == 403
    assert _row_counts() == before


# --- Discovery over HTTP -------------------------------------------------------------------------------------


def test_discovery_query_string(carol: APIClient, publisher: Any) -> None:
    for index, category in enumerate(["chat", "chat", "embeddings", "translation"]):
        make_version(publisher, f"svc-{index}", category=category, tags=["t", f"n{index}"])
    response = carol.get(API, {"category": "chat,embeddings", "tags": ["n0", "n2"], "limit": 1, "sort": "name"})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2 and [row["slug"] for row in body["results"]] == ["svc-0"]
    assert body["facets"]["category"] == {"chat": 1, "embeddings": 1}
    assert "offset=1" in body["next"] and body["previous"] is None
    second = carol.get(body["next"]).json()
    assert [row["slug"] for row in second["results"]] == ["svc-2"]
    assert second["next"] is None and "offset" not in second["previous"]
    row = second["results"][0]
    assert row["model_id"] == "acme/svc-2" and row["publisher"]["slug"] == "acme"
    assert set(row) >= {"id", "version", "version_id", "status", "pricing", "sla", "compliance", "endpoint"}


# --- API keys ------------------------------------------------------------------------------------------------


def test_a_tenant_api_key_acts_for_its_tenant_only(publisher: Any, publisher_admin: Any) -> None:
    from apps.consumption.services import create_api_key

    # given: alice also belongs to another publisher with a draft; her acme key reads and publishes for acme
    other = TenantFactory(slug="other-pub")
    MembershipFactory(tenant=other, user=publisher_admin, role=Role.OWNER)
    make_version(other, "other-draft", status=Status.DRAFT)
    make_version(publisher, "acme-draft", status=Status.DRAFT)
    _key, read_secret = create_api_key(tenant=publisher, actor=publisher_admin, name="reader", scopes=["read"])
    _key, publish_secret = create_api_key(tenant=publisher, actor=publisher_admin, name="ci", scopes=["publish"])
    reader, ci = APIClient(), APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {read_secret}")
    ci.credentials(HTTP_AUTHORIZATION=f"Bearer {publish_secret}")
    # when / then
    listed = reader.get(API).json()
    assert [(row["slug"], row["status"]) for row in listed["results"]] == [("acme-draft", "draft")]
    draft_id = listed["results"][0]["id"]
    assert reader.get(f"{API}{draft_id}/status/").status_code == 200
    assert reader.post(API, definition(), format="json").status_code == 403  # read scope cannot write
    response = ci.post(API, definition(), format="json")
    assert response.status_code == 202 and response.json()["service"]["publisher"]["slug"] == "acme"
    assert response.json()["version"]["endpoint"]["url"] == ""
