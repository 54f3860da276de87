"""The publishing pipeline's steps. Each step records its outcome; the first failure ends the run.

Order: schema → OpenAPI → policy → endpoint probe → registry sync → approval decision. The probe runs before the
registry sync (SPEC lists it after) so that a registered entry is never left behind by a failing probe: nothing is
half-published.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import structlog
from celery import chain, signature
from django.db import transaction
from django.utils import timezone

from apps.publishing import lifecycle
from apps.publishing.conf import publishing_settings
from apps.publishing.crypto import decrypt_secret
from apps.publishing.models import AuthKind, Protocol, ServiceVersion, Status, ValidationRun, ValidationStep
from apps.publishing.network import GuardedTransport
from apps.publishing.validation import (
    Issue,
    builtin_policy_violations,
    needs_approval,
    openapi_issues,
    schema_issues,
)
from llm_infra_django.errors import AppError
from llm_infra_django.upstreams import get_policy_engine_client, get_registry_client

logger = structlog.get_logger(__name__)

STEPS = ("schema", "openapi", "policy", "probe", "registry", "approval")
# The Celery task running one step (`apps.publishing.tasks` registers it): queued by this name, so the services
# never import the tasks that import them.
STEP_TASK = "publishing.pipeline_step"


class StepFailed(Exception):
    """A step found problems: the run ends and the version becomes failed_validation."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        super().__init__("; ".join(issue.message for issue in issues))


def policy_step_issues(version: ServiceVersion, *, tenant_slug: str | None) -> list[Issue]:
    """The Policy Engine's violations when it is configured, else the built-in rules."""
    client = get_policy_engine_client()
    if not client.is_configured():
        return builtin_policy_violations(version)
    decision = client.evaluate("publishing", tenant=tenant_slug, resource=policy_resource(version))
    if decision.degraded:
        logger.warning("policy_engine_degraded", error=decision.error)
    return [
        Issue(v.rule, v.field or "", v.message, v.severity)
        for v in decision.violations
        if not decision.allowed or v.severity in ("high", "critical")
    ] or ([] if decision.allowed else [Issue("POLICY_DENIED", "", "The policy engine denied the service.", "high")])


def policy_resource(version: ServiceVersion) -> dict[str, Any]:
    return {
        "kind": "service",
        "name": version.name,
        "version": version.version,
        "category": version.category,
        "endpoint": {"url": version.endpoint_url, "protocol": version.protocol},
        "compliance": {
            "level": version.compliance_level,
            "certifications": version.certifications,
            "data_residency": version.data_residency,
            "gdpr": version.gdpr_compliant,
            "hipaa": version.hipaa_compliant,
        },
        "sla": {"availability": str(version.sla_availability), "support_level": version.support_level},
    }


def _schema(version: ServiceVersion) -> list[Issue]:
    issues = schema_issues(version)
    if issues:
        raise StepFailed(issues)
    return []


def _openapi(version: ServiceVersion) -> list[Issue]:
    issues = openapi_issues(version.openapi_document)
    errors = [issue for issue in issues if issue.severity == "error"]
    if errors:
        raise StepFailed(issues)
    return issues


def _policy(version: ServiceVersion) -> list[Issue]:
    issues = policy_step_issues(version, tenant_slug=version.service.publisher.slug)
    if issues:
        raise StepFailed(issues)
    return []


def probe_headers(version: ServiceVersion) -> dict[str, str]:
    secret = decrypt_secret(version.upstream_secret_encrypted)
    if version.auth_kind == AuthKind.BEARER:
        return {"Authorization": f"Bearer {secret}"}
    if version.auth_kind == AuthKind.API_KEY:
        return {"Authorization": f"Bearer {secret}", "api-key": secret}
    return {}


def _probe(version: ServiceVersion) -> list[Issue]:
    """A real `GET <base>/models` (OpenAI protocol), SSRF-guarded outside development."""
    if version.protocol == Protocol.ECHO:
        return [
            Issue("BUILTIN_PROVIDER", "endpoint.protocol", "The echo provider is built in; no network probe.", "info")
        ]
    url = version.endpoint_url.rstrip("/") + "/models"
    transport = None if publishing_settings.ALLOW_PRIVATE_ENDPOINTS else GuardedTransport(trust_env=False)
    started = time.perf_counter()
    try:
        with httpx.Client(
            transport=transport, timeout=publishing_settings.PROBE_TIMEOUT_MS / 1000, follow_redirects=False
        ) as client:
            response = client.get(url, headers=probe_headers(version))
    except httpx.HTTPError as exc:
        raise StepFailed(
            [Issue("ENDPOINT_UNREACHABLE", "endpoint.url", f"GET {url} failed: {type(exc).__name__}: {exc}"[:300])]
        ) from None
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    if response.status_code != 200:
        raise StepFailed([Issue("ENDPOINT_UNHEALTHY", "endpoint.url", f"GET {url} answered {response.status_code}.")])
    try:
        response.json()
    except ValueError:
        raise StepFailed([Issue("ENDPOINT_UNHEALTHY", "endpoint.url", f"GET {url} did not answer JSON.")]) from None
    return [Issue("PROBE_LATENCY", "endpoint.url", f"Answered in {latency_ms} ms.", "info")]


def _registry(version: ServiceVersion) -> list[Issue]:
    client = get_registry_client()
    if not client.is_configured():
        return [Issue("REGISTRY_NOT_CONFIGURED", "", "No registry is configured; nothing to sync.", "info")]
    try:
        result = client.register(
            "service",
            str(version.pk),
            name=version.name,
            version=version.version,
            owner=version.service.publisher.slug,
            status="active",
            metadata={"model_id": version.model_id, "category": version.category},
        )
    except AppError as exc:
        raise StepFailed([Issue("REGISTRY_SYNC_FAILED", "", f"Registry sync failed: {exc.message}")]) from None
    if result.degraded:
        raise StepFailed([Issue("REGISTRY_SYNC_FAILED", "", f"Registry sync failed: {result.error}")])
    return []


STEP_FUNCTIONS: dict[str, Callable[[ServiceVersion], list[Any]]] = {
    "schema": _schema,
    "openapi": _openapi,
    "policy": _policy,
    "probe": _probe,
    "registry": _registry,
}


def start(run_id: str) -> None:
    """Queue the steps of a run as one chain of step tasks (runs in-process when there is no broker)."""
    first, *rest = STEPS
    steps = [signature(STEP_TASK, args=(run_id, first)), *(signature(STEP_TASK, args=(name,)) for name in rest)]
    chain(*steps).apply_async()


def run_step(run_id: str, name: str) -> bool:
    """Run one step of a run; returns whether the run goes on."""
    run = ValidationRun.objects.select_related("version__service__publisher").get(pk=run_id)
    if run.outcome != ValidationRun.Outcome.RUNNING:
        return False
    version = run.version
    position = STEPS.index(name)
    started = time.perf_counter()
    if name == "approval":
        return _decide(run, version, started)
    try:
        messages = STEP_FUNCTIONS[name](version)
    except StepFailed as failure:
        _record(run, name, position, ValidationStep.Outcome.FAILED, failure.issues, started)
        _finish(run, version, Status.FAILED_VALIDATION, "; ".join(i.message for i in failure.issues)[:1000])
        return False
    except Exception as exc:  # a bug or an unexpected upstream failure must not leave the version validating
        logger.exception("pipeline_step_crashed", step=name, run=str(run.pk))
        issue = Issue("STEP_ERROR", "", f"The {name} step could not complete ({type(exc).__name__}).")
        _record(run, name, position, ValidationStep.Outcome.FAILED, [issue], started)
        _finish(run, version, Status.FAILED_VALIDATION, issue.message)
        return False
    _record(run, name, position, ValidationStep.Outcome.PASSED, messages, started)
    return True


def _decide(run: ValidationRun, version: ServiceVersion, started: float) -> bool:
    trusted = version.service.publisher.trusted_publisher
    target = Status.PENDING_APPROVAL if needs_approval(version, publisher_trusted=trusted) else Status.ACTIVE
    reason = {
        Status.PENDING_APPROVAL: "Waiting for platform approval.",
        Status.ACTIVE: "Published.",
    }[target]
    _record(
        run,
        "approval",
        STEPS.index("approval"),
        ValidationStep.Outcome.PASSED,
        [Issue("APPROVAL_DECISION", "", reason, "info")],
        started,
    )
    _finish(run, version, target, "")
    return False


def _record(run: ValidationRun, name: str, position: int, outcome: str, issues: list[Any], started: float) -> None:
    ValidationStep.objects.create(
        run=run,
        name=name,
        position=position,
        outcome=outcome,
        messages=[i.as_dict() if isinstance(i, Issue) else i for i in issues],
        duration_ms=round((time.perf_counter() - started) * 1000, 2),
    )


def _finish(run: ValidationRun, version: ServiceVersion, status: str, reason: str) -> None:
    with transaction.atomic():
        lifecycle.transition(version, status, actor=None, reason=reason)
        run.outcome = (
            ValidationRun.Outcome.FAILED if status == Status.FAILED_VALIDATION else ValidationRun.Outcome.PASSED
        )
        run.result_status = status
        run.finished_at = timezone.now()
        run.save(update_fields=["outcome", "result_status", "finished_at"])
