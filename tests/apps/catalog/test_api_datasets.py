"""Datasets (with provenance) and training runs over the REST API."""

from __future__ import annotations

from typing import Any

import pytest

from apps.catalog.models import Dataset, LineageEdge, TrainingRun
from apps.tenancy.models import Tenant
from tests.apps.catalog.factories import sha256_of
from tests.apps.tenancy.api_support import assert_error, client_for

pytestmark = pytest.mark.django_db

API = "/api/v1"


def dataset_body(**overrides: Any) -> dict[str, Any]:
    return {
        "slug": "tickets",
        "name": "Support tickets",
        "sources": [{"type": "manual", "uri": "https://acme.example/export", "description": "CRM export"}],
        "license": "CC-BY-NC-4.0",
        "derivatives": True,
        "pii_detected": True,
        "pii_removed": True,
        "certifications": ["soc2"],
        "checksum_sha256": sha256_of("tickets").upper(),
        "record_count": 120_000,
        **overrides,
    }


def test_a_dataset_is_registered_with_its_provenance(acme: Tenant, alice: Any) -> None:
    # when
    response = client_for(alice).post(f"{API}/datasets/", dataset_body(), format="json")

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["handle"] == "acme--tickets"
    assert body["license"] == "cc-by-nc-4.0" and body["commercial_use"] is False
    assert body["certifications"] == ["SOC2"]
    assert body["checksum_sha256"] == sha256_of("tickets")
    assert body["visibility"] == "private"


def test_bad_provenance_is_a_400_naming_the_paths(acme: Tenant, alice: Any) -> None:
    # when
    response = client_for(alice).post(
        f"{API}/datasets/",
        dataset_body(
            sources=[{"type": "osmosis"}, {"type": "api", "token": "x"}],
            checksum_sha256="abc",
            pii_detected="yes",
            record_count=-5,
        ),
        format="json",
    )

    # then
    assert set(assert_error(response, 400)["error"]["details"]["fields"]) == {
        "sources[0].type",
        "sources[1].token",
        "checksum_sha256",
        "pii_detected",
        "record_count",
    }
    assert not Dataset.objects.exists()


def test_private_datasets_stay_with_their_owner(acme: Tenant, alice: Any, bob: Any, globex: Tenant) -> None:
    # given a private and a public dataset of acme
    client = client_for(alice)
    private = client.post(f"{API}/datasets/", dataset_body(), format="json").json()
    client.post(f"{API}/datasets/", dataset_body(slug="open", visibility="public"), format="json")

    # when / then
    assert {d["slug"] for d in client_for(bob).get(f"{API}/datasets/").json()["results"]} == {"open"}
    assert_error(client_for(bob).get(f"{API}/datasets/{private['id']}/"), 404)
    assert_error(client_for(bob).get(f"{API}/datasets/acme--tickets/"), 404)
    assert client_for(bob).get(f"{API}/datasets/acme--open/").status_code == 200
    assert_error(client_for(bob).patch(f"{API}/datasets/acme--open/", {"name": "x"}, format="json"), 403)
    assert client.patch(f"{API}/datasets/acme--tickets/", {"pii_removed": False}, format="json").status_code == 200


def test_a_training_run_links_its_datasets_and_the_version_it_produced(
    acme: Tenant, alice: Any, bob: Any, globex: Tenant, published: Any
) -> None:
    # given a commercial model and a non-commercial dataset
    model = published(license="apache-2.0")
    client = client_for(alice)
    client.post(f"{API}/datasets/", dataset_body(), format="json")

    # when
    response = client.post(
        f"{API}/training-runs/",
        {
            "name": "sft-1",
            "datasets": ["acme--tickets"],
            "model_version": f"{model.handle}@1.0.0",
            "hyperparameters": {"lr": 2e-5, "epochs": 3},
            "infrastructure": {"gpu_type": "A100", "gpu_count": 8},
            "status": "succeeded",
            "started_at": "2026-11-01T08:00:00Z",
            "finished_at": "2026-11-01T10:30:00Z",
            "cost_usd": "412.50",
        },
        format="json",
    )

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["datasets"] == ["acme--tickets"]
    assert body["model_version"] == "acme--support-llama@1.0.0"
    assert body["duration_seconds"] == 9000.0 and body["cost_usd"] == "412.5"
    assert LineageEdge.objects.filter(edge_type="trained_on").count() == 1
    assert client.get(f"{API}/training-runs/").json()["count"] == 1
    assert client_for(bob).get(f"{API}/training-runs/").json()["count"] == 0
    assert_error(client_for(bob).get(f"{API}/training-runs/{body['id']}/"), 404)
    compliance = client.get(f"{API}/models/{model.handle}/compliance/").json()
    assert {v["code"] for v in compliance["violations"]} == {"COMMERCIAL_USE_CONFLICT"}


def test_bad_training_runs_are_a_400(acme: Tenant, alice: Any) -> None:
    response = client_for(alice).post(
        f"{API}/training-runs/",
        {
            "name": "",
            "datasets": ["acme--nope"],
            "started_at": "yesterday",
            "finished_at": "2026-11-01T10:30:00",
            "cost_usd": "-3",
        },
        format="json",
    )
    assert set(assert_error(response, 400)["error"]["details"]["fields"]) == {
        "name",
        "datasets[0]",
        "started_at",
        "finished_at",
        "cost_usd",
    }
    assert not TrainingRun.objects.exists()


def test_a_dataset_name_with_a_nul_character_is_a_400(acme: Tenant, alice: Any) -> None:
    # when (PostgreSQL stores no NUL in text: this was a 500)
    response = client_for(alice).post(f"{API}/datasets/", dataset_body(name="a\u0000b"), format="json")

    # then
    assert set(assert_error(response, 400)["error"]["details"]["fields"]) == {"name"}
    assert not Dataset.objects.exists()


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"datasets": ["acme--x\u0000y"]}, "datasets[0]"),
        ({"model_version": "acme--support-llama@1.0\u0000"}, "model_version"),
        ({"hyperparameters": {"lr\u0000": 1}}, "hyperparameters"),
        ({"infrastructure": {"gpu_type": "A100\u0000"}}, "infrastructure.gpu_type"),
        ({"started_at": "0001-01-01T00:00:00+01:00"}, "started_at"),  # before year 1 in UTC
    ],
)
def test_training_runs_the_database_cannot_store_are_a_400_naming_the_field(
    acme: Tenant, alice: Any, published: Any, values: dict[str, Any], field: str
) -> None:
    # given (each was a 500, found by the contract fuzzer or probing what it found)
    published()

    # when
    response = client_for(alice).post(f"{API}/training-runs/", {"name": "sft-1", **values}, format="json")

    # then
    assert set(assert_error(response, 400)["error"]["details"]["fields"]) == {field}
    assert not TrainingRun.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "sft-1", "hyperparameters": {"lr": 1e400}}', "hyperparameters.lr"),
        ('{"name": "sft-1", "infrastructure": {"gpus": [8, -1e400]}}', "infrastructure.gpus[1]"),
    ],
)
def test_training_runs_with_numbers_beyond_range_are_a_400_naming_the_field(
    acme: Tenant, alice: Any, body: str, field: str
) -> None:
    # when (1e400 parses as infinity, which PostgreSQL's jsonb refuses: was a 500)
    response = client_for(alice).generic("POST", f"{API}/training-runs/", body, content_type="application/json")

    # then
    assert set(assert_error(response, 400)["error"]["details"]["fields"]) == {field}
    assert not TrainingRun.objects.exists()


def test_training_run_times_of_any_offset_are_stored_in_utc(acme: Tenant, alice: Any) -> None:
    # when (an offset Python accepts and PostgreSQL refuses: was a 500)
    response = client_for(alice).post(
        f"{API}/training-runs/", {"name": "sft-1", "started_at": "2026-11-01T08:00:00+22:31"}, format="json"
    )

    # then
    assert response.status_code == 201, response.content
    assert response.json()["started_at"] == "2026-10-31T09:29:00Z"
