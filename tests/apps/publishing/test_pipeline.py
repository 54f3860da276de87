"""The publishing pipeline end to end (eager Celery chain), with a real local upstream and registry."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.publishing import services
from apps.publishing.crypto import decrypt_secret
from apps.publishing.models import ServiceVersion, Status, ValidationRun
from apps.tenancy.models import AuditLog
from tests.apps.publishing.conftest import definition
from tests.conftest import free_port

pytestmark = pytest.mark.django_db(transaction=True)


def publish(publisher, actor, slug="echo", version="1.0.0", **overrides):
    service, created, run = services.publish_service(
        publisher=publisher, actor=actor, slug=slug, version=version, values=definition(**overrides)
    )
    created.refresh_from_db()
    run.refresh_from_db()
    return service, created, run


def steps(run: ValidationRun) -> list[tuple[str, str]]:
    return list(run.steps.values_list("name", "outcome"))


def test_valid_public_service_of_a_trusted_publisher_goes_active(publisher, publisher_admin) -> None:
    _, version, run = publish(publisher, publisher_admin)
    assert version.status == Status.ACTIVE
    assert version.published_at is not None
    assert run.outcome == "passed" and run.result_status == Status.ACTIVE
    assert steps(run) == [
        ("schema", "passed"),
        ("openapi", "passed"),
        ("policy", "passed"),
        ("probe", "passed"),
        ("registry", "passed"),
        ("approval", "passed"),
    ]
    actions = list(AuditLog.objects.filter(tenant=publisher).values_list("action", flat=True))
    assert "service_version_validating" in actions and "service_version_active" in actions


def test_confidential_service_waits_for_approval_then_goes_active(publisher, publisher_admin, staff) -> None:
    _, version, _run = publish(publisher, publisher_admin, compliance_level="confidential", certifications=["SOC2"])
    assert version.status == Status.PENDING_APPROVAL
    services.approve_version(version=version, actor=staff, notes="looks fine")
    version.refresh_from_db()
    assert version.status == Status.ACTIVE


def test_untrusted_publisher_needs_approval_and_can_be_rejected(publisher, publisher_admin, staff) -> None:
    publisher.trusted_publisher = False
    publisher.save()
    _, version, _ = publish(publisher, publisher_admin)
    assert version.status == Status.PENDING_APPROVAL
    services.reject_version(version=version, actor=staff, notes="missing documentation")
    version.refresh_from_db()
    assert version.status == Status.REJECTED and version.review_notes == "missing documentation"


def test_policy_violation_fails_validation_with_the_violations(publisher, publisher_admin) -> None:
    _, version, run = publish(publisher, publisher_admin, data_residency=["US", "KP"])
    assert version.status == Status.FAILED_VALIDATION
    assert steps(run)[-1] == ("policy", "failed")
    messages = run.steps.get(name="policy").messages
    assert {m["code"] for m in messages} == {"SANCTIONED_RESIDENCY"}
    assert messages[0]["severity"] == "critical"


def test_schema_failure_stops_the_run_at_the_first_step(publisher, publisher_admin) -> None:
    _, version, run = publish(publisher, publisher_admin, data_residency=["DE"])
    assert version.status == Status.FAILED_VALIDATION
    assert steps(run) == [("schema", "failed")]
    assert run.steps.get().messages[0]["code"] == "GDPR_REQUIRED"


def test_probe_calls_the_real_upstream_with_its_credential(publisher, publisher_admin, local_upstream) -> None:
    _, version, run = publish(
        publisher,
        publisher_admin,
        protocol="openai",
        endpoint_url=local_upstream.url + "/v1",
        auth_kind="bearer",
        upstream_secret="sk-upstream-secret-123",
    )
    assert version.status == Status.ACTIVE
    path, headers = local_upstream.requests[0]
    assert path == "/v1/models"
    assert headers["Authorization"] == "Bearer sk-upstream-secret-123"
    assert "sk-upstream-secret-123" not in version.upstream_secret_encrypted
    assert decrypt_secret(version.upstream_secret_encrypted) == "sk-upstream-secret-123"
    assert run.steps.get(name="probe").messages[0]["code"] == "PROBE_LATENCY"


def test_unreachable_endpoint_fails_validation(publisher, publisher_admin) -> None:
    _, version, run = publish(
        publisher, publisher_admin, protocol="openai", endpoint_url=f"http://127.0.0.1:{free_port()}/v1"
    )
    assert version.status == Status.FAILED_VALIDATION
    assert steps(run)[-1] == ("probe", "failed")
    assert run.steps.get(name="probe").messages[0]["code"] == "ENDPOINT_UNREACHABLE"


def test_unhealthy_endpoint_fails_validation(publisher, publisher_admin, local_upstream) -> None:
    local_upstream.status = 503
    _, version, run = publish(publisher, publisher_admin, protocol="openai", endpoint_url=local_upstream.url)
    assert version.status == Status.FAILED_VALIDATION
    assert run.steps.get(name="probe").messages[0]["code"] == "ENDPOINT_UNHEALTHY"


def test_registry_failure_is_retried_then_fails_with_nothing_published(
    publisher, publisher_admin, local_upstream
) -> None:
    # given a configured registry that always answers 500
    local_upstream.status = 500
    upstreams = {"registry": {"URL": local_upstream.url, "TIMEOUT_MS": 500, "FAIL_OPEN": False}}
    infra = {
        "TRACING": {"ENABLED": False},
        "UPSTREAMS": upstreams,
        "RETRY": {"MAX_ATTEMPTS": 3, "BASE_DELAY_MS": 1, "MAX_DELAY_MS": 5},
    }
    with override_settings(LLM_INFRA=infra):
        _, version, run = publish(publisher, publisher_admin)

    # then it was tried several times, and the version failed validation without going live
    registry_calls = [path for path, _ in local_upstream.requests]
    assert len(registry_calls) == 3
    assert version.status == Status.FAILED_VALIDATION
    assert version.published_at is None
    assert steps(run)[-1] == ("registry", "failed")
    assert not ServiceVersion.objects.filter(status=Status.ACTIVE).exists()


def test_registry_sync_registers_the_version(publisher, publisher_admin, local_upstream) -> None:
    def registry_answer(path: str, sent: dict) -> dict:
        kind, entry_id = path.split("/")[-2:]
        return {"entry": {**sent, "kind": kind.rstrip("s"), "id": entry_id}}

    local_upstream.body = staticmethod(registry_answer)
    infra = {
        "TRACING": {"ENABLED": False},
        "UPSTREAMS": {"registry": {"URL": local_upstream.url, "TIMEOUT_MS": 1000, "FAIL_OPEN": False}},
    }
    with override_settings(LLM_INFRA=infra):
        _, version, run = publish(publisher, publisher_admin)
    assert version.status == Status.ACTIVE, list(run.steps.values_list("name", "messages"))
    assert any(f"/{version.pk}" in path for path, _ in local_upstream.requests)
