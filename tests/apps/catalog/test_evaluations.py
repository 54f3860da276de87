"""Evaluations: submitted through the API, or run by the Celery task against a real (local) evaluator over HTTP."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from apps.catalog import tasks
from apps.catalog.models import CatalogModel, Evaluation, EvaluationStatus
from apps.tenancy.models import AuditLog, Tenant
from tests.apps.tenancy.api_support import assert_error, client_for

pytestmark = pytest.mark.django_db

API = "/api/v1"


def body(**overrides: Any) -> dict[str, Any]:
    return {"model": "acme--support-llama", "version": "1.0.0", "benchmark": "mmlu", "score": 71.25, **overrides}


def test_a_result_is_submitted_corrected_and_withdrawn(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    model = published()
    client = client_for(alice)

    # when
    created = client.post(f"{API}/evaluations/", body(scores={"acc": 71.25, "acc_norm": 73}), format="json")
    evaluation_id = created.json()["id"]
    corrected = client.patch(f"{API}/evaluations/{evaluation_id}/", {"score": 75}, format="json")
    after_correction = CatalogModel.objects.get(pk=model.pk).quality_score
    withdrawn = client.delete(f"{API}/evaluations/{evaluation_id}/")

    # then
    assert created.status_code == 201, created.content
    assert created.json() | {"id": None, "created_at": None, "updated_at": None, "completed_at": None} == {
        "id": None,
        "model": "acme--support-llama",
        "version": "1.0.0",
        "benchmark": "mmlu",
        "benchmark_name": "mmlu",
        "benchmark_version": "",
        "dimension": "accuracy",
        "score": "71.25",
        "scores": {"acc": 71.25, "acc_norm": 73.0},
        "status": "completed",
        "source": "api",
        "error": "",
        "created_at": None,
        "updated_at": None,
        "completed_at": None,
    }
    assert corrected.json()["score"] == "75"
    assert after_correction == Decimal("75.00")
    assert withdrawn.status_code == 204
    assert CatalogModel.objects.get(pk=model.pk).quality_score is None
    actions = set(AuditLog.objects.filter(tenant=acme).values_list("action", flat=True))
    assert {"catalog_evaluation_submitted", "catalog_evaluation_updated", "catalog_evaluation_deleted"} <= actions


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"score": 120}, {"score"}),
        ({"score": -1}, {"score"}),
        ({"score": "high"}, {"score"}),
        ({"score": None}, {"status"}),
        ({"benchmark": "vibes"}, {"benchmark"}),
        ({"benchmark": "custom"}, {"name"}),
        ({"benchmark": "mmlu", "dimension": "safety"}, {"dimension"}),
        ({"scores": {"acc": "x"}}, {"scores.acc"}),
        ({"status": "failed"}, {"score"}),
        ({"model": "acme--nope"}, {"model"}),
        ({"version": "3.0.0"}, {"version"}),
        ({"run": True}, {"run"}),
        ({"colour": "red"}, {"colour"}),
    ],
)
def test_bad_evaluations_are_a_400_naming_the_fields(
    acme: Tenant, alice: Any, published: Any, overrides: dict[str, Any], fields: set[str]
) -> None:
    # given
    published()

    # when
    response = client_for(alice).post(f"{API}/evaluations/", body(**overrides), format="json")

    # then
    assert set(assert_error(response, 400, "validation_error")["error"]["details"]["fields"]) == fields
    assert not Evaluation.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"model": "acme--support\u0000"}, "model"),
        ({"version": "1.0\u0000"}, "version"),
        ({"benchmark": "custom", "name": "mine\u0000"}, "name"),
        ({"error": "\u0000", "status": "failed", "score": None}, "error"),
    ],
)
def test_nul_characters_are_a_400_naming_the_field(
    acme: Tenant, alice: Any, published: Any, overrides: dict[str, Any], field: str
) -> None:
    # given (PostgreSQL stores no NUL in text: these were 500s)
    published()

    # when
    response = client_for(alice).post(f"{API}/evaluations/", body(**overrides), format="json")

    # then
    assert field in assert_error(response, 400, "validation_error")["error"]["details"]["fields"]
    assert not Evaluation.objects.exists()


def test_a_second_result_for_the_same_benchmark_version_is_a_conflict(acme: Tenant, alice: Any, published: Any) -> None:
    published()
    client = client_for(alice)
    assert client.post(f"{API}/evaluations/", body(), format="json").status_code == 201
    assert_error(client.post(f"{API}/evaluations/", body(score=10), format="json"), 409)
    assert client.post(f"{API}/evaluations/", body(benchmark_version="v2"), format="json").status_code == 201


def test_evaluations_are_filtered(acme: Tenant, alice: Any, published: Any) -> None:
    # given
    published()
    client = client_for(alice)
    client.post(f"{API}/evaluations/", body(), format="json")
    client.post(f"{API}/evaluations/", body(benchmark="toxicity", score=3), format="json")

    # when / then
    assert [r["benchmark"] for r in client.get(f"{API}/evaluations/?benchmark=toxicity").json()["results"]] == [
        "toxicity"
    ]
    assert client.get(f"{API}/evaluations/?model=acme--support-llama&version=1.0.0").json()["count"] == 2
    assert client.get(f"{API}/evaluations/?model=acme--support-llama&version=2.0.0").json()["count"] == 0


# --- The evaluator --------------------------------------------------------------------------------------------


def test_running_an_evaluation_calls_the_evaluator_over_http(
    acme: Tenant, alice: Any, published: Any, evaluator_server: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given a configured evaluator that answers 82.5
    published()
    evaluator_server.body = {"status": "completed", "score": 82.5, "scores": {"acc": 82.5}}
    with override_settings(MARKETPLACE_CATALOG={"EVALUATOR_URL": evaluator_server.url, "EVALUATOR_API_KEY": "k-1"}):
        # when the evaluation is asked for, then its queued task runs
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            response = client_for(alice).post(
                f"{API}/evaluations/",
                {"model": "acme--support-llama", "version": "1.0.0", "benchmark": "humaneval", "run": True},
                format="json",
            )
        pending = Evaluation.objects.get()
        status = tasks.run_evaluation_task(str(pending.pk))

    # then
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending" and response.json()["source"] == "evaluator"
    assert len(callbacks) == 1
    assert status == EvaluationStatus.COMPLETED
    done = Evaluation.objects.get()
    assert (done.status, done.score, done.scores) == ("completed", Decimal("82.500"), {"acc": 82.5})
    assert CatalogModel.objects.get().quality_score == Decimal("82.50")
    (request,) = evaluator_server.received
    assert request["path"] == "/v1/evaluations"
    assert request["headers"]["Authorization"] == "Bearer k-1"
    assert request["json"]["model"] == "acme--support-llama"
    assert request["json"]["benchmark"] == "humaneval"
    assert request["json"]["artifacts"][0]["sha256"]


@pytest.mark.parametrize(
    ("status", "answer", "reason"),
    [
        (200, {"status": "failed", "error": "CUDA OOM"}, "The evaluator failed: CUDA OOM"),
        (200, {"status": "completed", "score": 170}, "outside 0-100"),
        (200, {"status": "completed"}, "no numeric score"),
        (200, b"<html>", "not JSON"),
        (404, {"error": "no such route"}, "HTTP 404"),
        (503, {"error": "busy"}, "HTTP 503"),
    ],
)
def test_an_evaluator_failure_fails_the_evaluation_without_inventing_a_score(
    acme: Tenant,
    alice: Any,
    published: Any,
    evaluator_server: Any,
    django_capture_on_commit_callbacks: Any,
    status: int,
    answer: Any,
    reason: str,
) -> None:
    # given
    published()
    evaluator_server.status, evaluator_server.body = status, answer
    options = {"EVALUATOR_URL": evaluator_server.url, "EVALUATOR_MAX_ATTEMPTS": 2}
    with override_settings(MARKETPLACE_CATALOG=options, LLM_INFRA={"RETRY": {"BASE_DELAY_MS": 1, "MAX_DELAY_MS": 2}}):
        with django_capture_on_commit_callbacks(execute=False):
            client_for(alice).post(
                f"{API}/evaluations/",
                {"model": "acme--support-llama", "version": "1.0.0", "benchmark": "mmlu", "run": True},
                format="json",
            )

        # when
        outcome = tasks.run_evaluation_task(str(Evaluation.objects.get().pk))

    # then
    evaluation = Evaluation.objects.get()
    assert outcome == evaluation.status == EvaluationStatus.FAILED
    assert evaluation.score is None and reason in evaluation.error
    assert CatalogModel.objects.get().quality_score is None
    assert len(evaluator_server.received) == (2 if status == 503 else 1)


def test_an_unreachable_evaluator_fails_the_evaluation(
    acme: Tenant, alice: Any, published: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given an evaluator URL where nothing listens
    from tests.conftest import free_port

    published()
    url = f"http://127.0.0.1:{free_port()}"
    options = {"EVALUATOR_URL": url, "EVALUATOR_MAX_ATTEMPTS": 1, "EVALUATOR_TIMEOUT_MS": 500}
    with override_settings(MARKETPLACE_CATALOG=options):
        with django_capture_on_commit_callbacks(execute=False):
            client_for(alice).post(
                f"{API}/evaluations/",
                {"model": "acme--support-llama", "version": "1.0.0", "benchmark": "mmlu", "run": True},
                format="json",
            )

        # when
        tasks.run_evaluation_task(str(Evaluation.objects.get().pk))

    # then
    evaluation = Evaluation.objects.get()
    assert evaluation.status == "failed" and "unreachable" in evaluation.error


def test_a_task_for_an_evaluation_that_is_not_pending_does_nothing(acme: Tenant, alice: Any, published: Any) -> None:
    # given a completed evaluation
    published()
    client_for(alice).post(f"{API}/evaluations/", body(), format="json")

    # when / then
    assert tasks.run_evaluation_task(str(Evaluation.objects.get().pk)) == "skipped"
    assert Evaluation.objects.get().score == Decimal("71.250")


def test_without_an_evaluator_runs_cannot_be_asked_for(acme: Tenant, alice: Any, published: Any) -> None:
    published()
    response = client_for(alice).post(
        f"{API}/evaluations/",
        {"model": "acme--support-llama", "version": "1.0.0", "benchmark": "mmlu", "run": True},
        format="json",
    )
    assert_error(response, 400, "validation_error", field="run")


def test_lost_and_stuck_evaluator_runs_are_recovered(
    acme: Tenant, alice: Any, published: Any, evaluator_server: Any, django_capture_on_commit_callbacks: Any
) -> None:
    # given two runs asked for long ago: one never picked up, one whose worker died while running
    from datetime import timedelta

    from django.utils import timezone

    from apps.catalog import services

    published()
    with override_settings(MARKETPLACE_CATALOG={"EVALUATOR_URL": evaluator_server.url}):
        with django_capture_on_commit_callbacks(execute=False):
            for benchmark in ("mmlu", "hellaswag"):
                client_for(alice).post(
                    f"{API}/evaluations/",
                    {"model": "acme--support-llama", "version": "1.0.0", "benchmark": benchmark, "run": True},
                    format="json",
                )
        Evaluation.objects.filter(benchmark="hellaswag").update(status=EvaluationStatus.RUNNING)
        Evaluation.objects.update(updated_at=timezone.now() - timedelta(hours=2))

        # when the periodic recovery runs (and the task it queued after commit is run here)
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            counts = services.recover_evaluations()
        tasks.run_evaluation_task(str(Evaluation.objects.get(benchmark="mmlu").pk))

    # then the lost one was queued again and completed, the stuck one failed
    assert counts == {"requeued": 1, "failed": 1}
    assert len(callbacks) == 1
    assert Evaluation.objects.get(benchmark="mmlu").status == EvaluationStatus.COMPLETED
    stuck = Evaluation.objects.get(benchmark="hellaswag")
    assert stuck.status == EvaluationStatus.FAILED and "abandoned" in stuck.error and stuck.score is None
    assert services.recover_evaluations() == {"requeued": 0, "failed": 0}
