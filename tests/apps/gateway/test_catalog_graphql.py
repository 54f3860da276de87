"""The catalog through /graphql: queries scoped exactly as the REST API (public, private, owner tenant; by list, by
Relay node id and nested), mutations through the same services with payload errors, nested lists without N+1."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from apps.catalog import services
from apps.catalog.graphql.loaders import announce_service_versions, model_version_for_service_version
from apps.catalog.models import Evaluation, ServedBy, TrainingRun
from apps.consumption.services import create_api_key
from apps.publishing.models import Service, ServiceVersion
from apps.tenancy.models import Role
from tests.apps.catalog.factories import CatalogModelFactory, ModelVersionFactory, artifact
from tests.apps.gateway import catalog_documents as doc
from tests.apps.gateway.support import data, gql, logged_in, with_key
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def service_version(tenant: Any, slug: str) -> ServiceVersion:
    service = Service.objects.create(publisher=tenant, slug=slug)
    return ServiceVersion.objects.create(
        service=service, version="1.0.0", major=1, minor=0, patch=0, name=slug, description="d" * 20, category="chat"
    )


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    """acme (alice) has a public published model with an evaluated, served version trained on a dataset, and a
    private draft model, a private dataset and a training run; globex (bob) has nothing of its own."""
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    acme, globex = TenantFactory(slug="acme"), TenantFactory(slug="globex")
    MembershipFactory(tenant=acme, user=alice, role=Role.OWNER)
    MembershipFactory(tenant=globex, user=bob, role=Role.OWNER)
    public = services.create_model(
        owner=acme,
        actor=alice,
        slug="support-llama",
        values={"name": "Support Llama", "visibility": "public", "tags": ["support"], "base_model_name": "llama-3"},
    )
    version = services.create_version(
        model=public,
        actor=alice,
        version="1.0.0",
        values={"artifacts": [artifact("llama.safetensors")], "status": "ready"},
        served_by=[str(service_version(acme, "support").pk)],
    )
    services.change_model_status(model=public, actor=alice, status="published")
    evaluation = services.submit_evaluation(version=version, actor=alice, values={"benchmark": "mmlu", "score": 71.5})
    private = services.create_model(owner=acme, actor=alice, slug="secret", values={"name": "Secret"})
    hidden_version = services.create_version(
        model=private, actor=alice, version="0.1.0", values={"artifacts": [artifact("s.safetensors")]}
    )
    hidden_evaluation = services.submit_evaluation(
        version=hidden_version, actor=alice, values={"benchmark": "humaneval", "score": 50}
    )
    dataset = services.create_dataset(
        owner=acme,
        actor=alice,
        slug="tickets",
        values={"name": "Tickets", "sources": [{"type": "manual", "uri": "s3://d/t"}], "license": "cc-by-4.0"},
    )
    run = services.create_training_run(
        owner=acme,
        actor=alice,
        values={"name": "sft-1", "cost_usd": "12.5"},
        datasets=["acme--tickets"],
        model_version="acme--support-llama@1.0.0",
    )
    return {
        "alice": alice,
        "bob": bob,
        "acme": acme,
        "globex": globex,
        "public": public,
        "private": private,
        "version": version,
        "evaluation": evaluation,
        "hidden_evaluation": hidden_evaluation,
        "dataset": dataset,
        "run": run,
    }


def ids_seen_by_alice(world: dict[str, Any]) -> dict[str, str]:
    """Relay ids of acme's private model, its version and evaluation, the private dataset and the run."""
    alice = logged_in(world["alice"])
    model = data(gql(alice, doc.MODEL, {"slug": "acme--secret"}))["catalogModel"]
    version = model["versions"]["edges"][0]["node"]
    dataset = data(gql(alice, doc.DATASET, {"ref": "acme--tickets"}))["dataset"]
    run = data(gql(alice, doc.TRAINING_RUNS))["trainingRuns"]["edges"][0]["node"]
    return {
        "model": model["id"],
        "version": version["id"],
        "evaluation": version["evaluations"]["edges"][0]["node"]["id"],
        "dataset": dataset["id"],
        "run": run["id"],
    }


# --- Queries -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "handles"),
    [
        ("anonymous", ["acme--support-llama"]),
        ("bob", ["acme--support-llama"]),
        ("alice", ["acme--secret", "acme--support-llama"]),
    ],
)
def test_models_are_listed_as_the_rest_api_lists_them(world, caller: str, handles: list[str]) -> None:
    # given
    client = Client() if caller == "anonymous" else logged_in(world[caller])

    # when
    listed = data(gql(client, doc.MODELS, {"ordering": "name"}))["catalogModels"]

    # then
    assert sorted(e["node"]["handle"] for e in listed["edges"]) == handles
    assert listed["totalCount"] == len(handles)
    assert listed["facets"]["visibility"] == ({"private": 1, "public": 1} if caller == "alice" else {"public": 1})


def test_models_are_filtered_and_searched(world) -> None:
    alice = logged_in(world["alice"])
    assert [
        e["node"]["handle"] for e in data(gql(alice, doc.MODELS, {"search": "llama"}))["catalogModels"]["edges"]
    ] == ["acme--support-llama"]
    assert data(gql(alice, doc.MODELS, {"tags": ["support", "missing"]}))["catalogModels"]["totalCount"] == 0
    assert data(gql(alice, doc.MODELS, {"owner": "globex"}))["catalogModels"]["totalCount"] == 0
    refused = gql(alice, doc.MODELS, {"ordering": "sideways"}).json()
    assert refused["errors"][0]["extensions"]["code"] == "validation_error"


@pytest.mark.parametrize(
    "tags", [[f"t{i}" for i in range(40_000)], [f"t{i}" for i in range(21)], ["x" * 101]], ids=["40000", "21", "long"]
)
def test_a_tags_argument_beyond_its_bounds_is_a_quick_error_naming_it(db: Any, tags: list[str]) -> None:
    # when: anyone (no login) asks
    started = time.perf_counter()
    body = gql(Client(), doc.MODELS, {"tags": tags}).json()
    # then
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "validation_error" and "tags: " in error["message"]
    assert time.perf_counter() - started < 2


def test_tags_must_all_match(world) -> None:
    alice = logged_in(world["alice"])
    assert data(gql(alice, doc.MODELS, {"tags": ["SUPPORT"]}))["catalogModels"]["totalCount"] == 1
    assert data(gql(alice, doc.MODELS, {"tags": ["support", "missing"]}))["catalogModels"]["totalCount"] == 0


def test_a_model_by_handle_with_nested_versions_evaluations_and_serving_services(world) -> None:
    # when
    model = data(gql(Client(), doc.MODEL, {"slug": "acme--support-llama"}))["catalogModel"]

    # then
    assert model["handle"] == "acme--support-llama" and model["owner"] == "acme" and model["tags"] == ["support"]
    assert model["latestVersion"] == {"version": "1.0.0"}
    version = model["versions"]["edges"][0]["node"]
    assert model["versions"]["totalCount"] == 1
    assert version["status"] == "ready" and version["artifacts"][0]["sizeBytes"] == 1000
    assert version["servedBy"] == [{"modelId": "acme/support@1.0.0", "status": "draft"}]
    evaluations = version["evaluations"]
    assert evaluations["totalCount"] == 1
    assert evaluations["edges"][0]["node"]["benchmarkName"] == "mmlu"
    assert evaluations["edges"][0]["node"]["model"] == {"handle": "acme--support-llama"}
    assert data(gql(Client(), doc.MODEL_VERSION, {"slug": "acme--support-llama", "version": "1.0.0"}))[
        "modelVersion"
    ] == {
        "id": version["id"],
        "version": "1.0.0",
        "model": {"handle": "acme--support-llama"},
        "evaluations": {"totalCount": 1},
    }
    assert data(gql(Client(), doc.MODEL, {"slug": "support-llama"}))["catalogModel"] is None  # a handle, not a slug


def test_lineage_has_nodes_and_edges_with_depth(world) -> None:
    # when
    drawn = data(gql(logged_in(world["alice"]), doc.LINEAGE, {"slug": "acme--support-llama", "depth": 2}))["lineage"]

    # then the version derives from the base model and the run, which was trained on the dataset (two edges away)
    nodes = {n["kind"]: n for n in drawn["nodes"]}
    assert drawn["depth"] == 2 and drawn["model"] == "acme--support-llama"
    assert nodes["model_version"]["relation"] == "self" and nodes["model_version"]["depth"] == 0
    assert nodes["dataset"]["relation"] == "ancestor" and nodes["dataset"]["depth"] == 2
    assert {e["type"] for e in drawn["edges"]} == {"derived_from", "trained_on", "evaluated_by"}
    shallow = data(gql(Client(), doc.LINEAGE, {"slug": "acme--support-llama", "depth": 1}))["lineage"]
    assert "dataset" not in {n["kind"] for n in shallow["nodes"]}
    assert {n["label"] for n in shallow["nodes"] if n["kind"] == "training_run"} == {"(not visible to you)"}
    too_deep = gql(Client(), doc.LINEAGE, {"slug": "acme--support-llama", "depth": 999}).json()
    assert too_deep["errors"][0]["extensions"]["code"] == "validation_error"
    unknown = gql(Client(), doc.LINEAGE, {"slug": "acme--support-llama", "version": "9.9.9"}).json()
    assert unknown["errors"][0]["extensions"]["code"] == "validation_error"


def test_evaluations_and_the_leaderboard(world) -> None:
    evaluations = data(gql(Client(), doc.EVALUATIONS))["evaluations"]
    assert [e["node"]["benchmarkName"] for e in evaluations["edges"]] == ["mmlu"]
    assert evaluations["edges"][0]["node"]["modelVersion"] == {"version": "1.0.0"}
    mine = data(gql(logged_in(world["alice"]), doc.EVALUATIONS, {"model": "acme--secret"}))["evaluations"]
    assert [e["node"]["benchmarkName"] for e in mine["edges"]] == ["humaneval"]
    board = data(gql(Client(), doc.LEADERBOARD, {"benchmark": "mmlu"}))["leaderboard"]
    assert board["totalCount"] == 1
    assert board["edges"][0]["node"] == {
        "rank": 1,
        "model": "acme--support-llama",
        "version": "1.0.0",
        "score": "71.5",
        "benchmark": "mmlu",
    }
    by_quality = data(gql(Client(), doc.LEADERBOARD))["leaderboard"]
    assert [e["node"]["model"] for e in by_quality["edges"]] == ["acme--support-llama"]


def test_datasets_and_training_runs_are_the_owners(world) -> None:
    alice, bob = logged_in(world["alice"]), logged_in(world["bob"])
    datasets = data(gql(alice, doc.DATASETS, {"owner": "acme"}))["datasets"]
    assert [e["node"]["handle"] for e in datasets["edges"]] == ["acme--tickets"]
    assert datasets["edges"][0]["node"]["sources"] == [{"type": "manual", "uri": "s3://d/t"}]
    assert data(gql(bob, doc.DATASETS))["datasets"]["totalCount"] == 0
    assert data(gql(alice, doc.DATASET, {"ref": str(world["dataset"].pk)}))["dataset"]["handle"] == "acme--tickets"
    runs = data(gql(alice, doc.TRAINING_RUNS))["trainingRuns"]
    assert runs["edges"][0]["node"]["datasets"] == [{"handle": "acme--tickets"}]
    assert runs["edges"][0]["node"]["modelVersion"] == {"version": "1.0.0"}
    assert runs["edges"][0]["node"]["costUsd"] == "12.5"
    assert data(gql(bob, doc.TRAINING_RUNS))["trainingRuns"]["totalCount"] == 0
    anonymous = gql(Client(), doc.TRAINING_RUNS).json()
    assert anonymous["errors"][0]["extensions"]["code"] == "authentication_error"


# --- Isolation -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("caller", ["bob", "bob's key", "anonymous"])
def test_another_tenant_cannot_read_private_rows_by_list_by_id_or_nested(world, caller: str) -> None:
    # given
    ids = ids_seen_by_alice(world)
    if caller == "bob's key":
        _, secret = create_api_key(tenant=world["globex"], actor=world["bob"], name="gql", scopes=["read"])
        client = with_key(secret)
    else:
        client = logged_in(world["bob"]) if caller == "bob" else Client()

    # when / then: by node id
    for node_id in ids.values():
        assert data(gql(client, doc.NODE, {"id": node_id}))["node"] is None
    # by list
    assert "acme--secret" not in {e["node"]["handle"] for e in data(gql(client, doc.MODELS))["catalogModels"]["edges"]}
    assert "humaneval" not in {
        e["node"]["benchmarkName"] for e in data(gql(client, doc.EVALUATIONS))["evaluations"]["edges"]
    }
    assert data(gql(client, doc.DATASETS, {"owner": "acme"}))["datasets"]["totalCount"] == 0
    # by handle, and nested under what they may see
    assert data(gql(client, doc.MODEL, {"slug": "acme--secret"}))["catalogModel"] is None
    assert data(gql(client, doc.MODEL_VERSION, {"slug": "acme--secret", "version": "0.1.0"}))["modelVersion"] is None
    assert data(gql(client, doc.LINEAGE, {"slug": "acme--secret"}))["lineage"] is None
    assert data(gql(client, doc.DATASET, {"ref": "acme--tickets"}))["dataset"] is None
    assert data(gql(client, doc.EVALUATIONS, {"model": "acme--secret"}))["evaluations"]["totalCount"] == 0
    lineage = data(gql(client, doc.LINEAGE, {"slug": "acme--support-llama", "depth": 3}))["lineage"]
    hidden = [n for n in lineage["nodes"] if n["kind"] in ("dataset", "training_run")]
    assert hidden and all(n["label"] == "(not visible to you)" and n["ref"] == "" for n in hidden)


def test_the_owner_reads_its_private_rows_by_node_id(world) -> None:
    ids = ids_seen_by_alice(world)
    alice = logged_in(world["alice"])
    found = {name: data(gql(alice, doc.NODE, {"id": node_id}))["node"] for name, node_id in ids.items()}
    assert found == {
        "model": {"__typename": "CatalogModelNode", "handle": "acme--secret"},
        "version": {"__typename": "ModelVersionNode", "version": "0.1.0"},
        "evaluation": {"__typename": "EvaluationNode", "benchmarkName": "humaneval"},
        "dataset": {"__typename": "DatasetNode", "handle": "acme--tickets"},
        "run": {"__typename": "TrainingRunNode", "name": "sft-1"},
    }


def test_a_tenant_header_naming_a_foreign_tenant_is_refused(world) -> None:
    body = gql(logged_in(world["bob"]), doc.MODELS, HTTP_X_TENANT="acme").json()
    assert body["errors"][0]["extensions"]["code"] == "authorization_error"


# --- Mutations -----------------------------------------------------------------------------------------------


def test_mutations_write_through_the_catalog_services(world) -> None:
    # given
    alice = logged_in(world["alice"])
    served = service_version(world["acme"], "chat")

    # when / then: a model, its versions, a dataset, a run, a lineage edge, evaluations, archival
    created = data(gql(alice, doc.MODEL_CREATE, {"input": {"slug": "coder", "name": "Coder", "license": "apache-2.0"}}))
    assert created["modelCreate"] == {
        "model": {
            "handle": "acme--coder",
            "status": "draft",
            "visibility": "private",
            "commercialUse": True,
            "tags": [],
        },
        "errors": [],
    }
    version_input = {
        "version": "1.0.0",
        "artifacts": [{"uri": "s3://m/c", "format": "safetensors", "sizeBytes": 5_000_000_000, "sha256": "a" * 64}],
    }
    version = data(gql(alice, doc.VERSION_CREATE, {"slug": "acme--coder", "input": version_input}))
    assert version["modelVersionCreate"]["errors"] == []
    assert version["modelVersionCreate"]["modelVersion"]["sizeBytes"] == 5_000_000_000
    updated_version = data(
        gql(
            alice,
            doc.VERSION_UPDATE,
            {
                "slug": "acme--coder",
                "version": "1.0.0",
                "input": {"status": "ready", "changelog": "First", "p95LatencyMs": 900, "servedBy": [str(served.pk)]},
            },
        )
    )["modelVersionUpdate"]
    assert updated_version == {
        "modelVersion": {
            "version": "1.0.0",
            "status": "ready",
            "changelog": "First",
            "p95LatencyMs": 900.0,
            "servedBy": [{"serviceVersionId": str(served.pk), "modelId": "acme/chat@1.0.0"}],
        },
        "errors": [],
    }
    published = data(
        gql(alice, doc.MODEL_UPDATE, {"slug": "acme--coder", "input": {"status": "published", "visibility": "public"}})
    )["modelUpdate"]
    assert published["model"]["status"] == "published" and published["errors"] == []
    dataset = data(
        gql(
            alice,
            doc.DATASET_CREATE,
            {"input": {"slug": "code", "name": "Code", "license": "mit", "sources": [{"type": "web_scrape"}]}},
        )
    )["datasetCreate"]
    assert dataset["dataset"]["handle"] == "acme--code" and dataset["dataset"]["commercialUse"] is True
    changed = data(gql(alice, doc.DATASET_UPDATE, {"ref": dataset["dataset"]["id"], "input": {"piiDetected": True}}))
    assert changed["datasetUpdate"]["dataset"] == {"handle": "acme--code", "piiDetected": True, "piiRemoved": False}
    run = data(
        gql(
            alice,
            doc.RUN_CREATE,
            {
                "input": {
                    "name": "sft-2",
                    "datasets": ["acme--code"],
                    "modelVersion": version["modelVersionCreate"]["modelVersion"]["id"],
                    "hyperparameters": {"lr": 0.0001},
                    "startedAt": "2024-01-01T00:00:00+00:00",
                    "finishedAt": "2024-01-01T01:00:00+00:00",
                    "costUsd": "3.25",
                }
            },
        )
    )["trainingRunCreate"]
    assert run["errors"] == []
    assert run["trainingRun"]["durationSeconds"] == 3600.0 and run["trainingRun"]["costUsd"] == "3.25"
    assert run["trainingRun"]["datasets"] == [{"handle": "acme--code"}]
    edge = data(
        gql(
            alice,
            doc.EDGE_ADD,
            {
                "slug": "acme--coder",
                "input": {
                    "source": {"kind": "model_version", "ref": version["modelVersionCreate"]["modelVersion"]["id"]},
                    "target": {"kind": "dataset", "ref": "acme--tickets"},
                    "type": "trained_on",
                },
            },
        )
    )["lineageEdgeAdd"]
    assert edge["errors"] == [] and edge["edge"]["type"] == "trained_on"
    evaluation = data(
        gql(
            alice,
            doc.EVALUATION_CREATE,
            {"input": {"model": "acme--coder", "version": "1.0.0", "benchmark": "humaneval", "score": 60}},
        )
    )["evaluationCreate"]
    assert evaluation["evaluation"]["dimension"] == "accuracy" and evaluation["evaluation"]["score"] == "60"
    evaluation_id = evaluation["evaluation"]["id"]
    corrected = data(gql(alice, doc.EVALUATION_UPDATE, {"id": evaluation_id, "input": {"score": 65.5}}))
    assert corrected["evaluationUpdate"] == {"evaluation": {"score": "65.5", "status": "completed"}, "errors": []}
    assert data(gql(alice, doc.EVALUATION_DELETE, {"id": evaluation_id}))["evaluationDelete"] == {
        "ok": True,
        "errors": [],
    }
    assert not Evaluation.objects.filter(model_version__model__slug="coder").exists()
    archived = data(gql(alice, doc.MODEL_ARCHIVE, {"slug": "acme--coder"}))["modelArchive"]
    assert archived == {"model": {"status": "archived"}, "errors": []}


def test_validation_errors_are_payload_errors_naming_each_field(world) -> None:
    alice = logged_in(world["alice"])
    bad_model = gql(alice, doc.MODEL_CREATE, {"input": {"slug": "Not A Slug", "name": "x", "visibility": "everyone"}})
    assert {(e["field"], e["code"]) for e in data(bad_model)["modelCreate"]["errors"]} == {
        ("slug", "validation_error"),
        ("visibility", "validation_error"),
    }
    bad_artifact = {
        "version": "2.0.0",
        "artifacts": [{"uri": "s3://m", "format": "onnx", "sizeBytes": 1, "sha256": "z"}],
    }
    refused = data(gql(alice, doc.VERSION_CREATE, {"slug": "acme--support-llama", "input": bad_artifact}))
    assert [e["field"] for e in refused["modelVersionCreate"]["errors"]] == ["artifacts[0].sha256"]
    assert refused["modelVersionCreate"]["modelVersion"] is None
    no_model = data(
        gql(alice, doc.EVALUATION_CREATE, {"input": {"model": "acme--nope", "version": "1.0.0", "benchmark": "mmlu"}})
    )
    assert [e["field"] for e in no_model["evaluationCreate"]["errors"]] == ["model"]


def test_domain_errors_are_payload_errors(world) -> None:
    alice = logged_in(world["alice"])
    transition = data(gql(alice, doc.MODEL_UPDATE, {"slug": "acme--secret", "input": {"status": "published"}}))
    assert transition["modelUpdate"]["errors"][0]["code"] == "business_rule_error"  # no ready version
    duplicate = data(gql(alice, doc.MODEL_CREATE, {"input": {"slug": "secret", "name": "Again"}}))
    assert duplicate["modelCreate"]["errors"] == [
        {"field": "slug", "message": "Model 'acme--secret' already exists.", "code": "conflict"}
    ]
    cycle = data(
        gql(
            alice,
            doc.EDGE_ADD,
            {
                "slug": "acme--support-llama",
                "input": {
                    "source": {"kind": "training_run", "ref": str(world["run"].pk)},
                    "target": {"kind": "model_version", "ref": "acme--support-llama@1.0.0"},
                    "type": "derived_from",
                },
            },
        )
    )
    assert cycle["lineageEdgeAdd"]["errors"][0]["code"] == "lineage_cycle"
    archived = data(gql(alice, doc.MODEL_ARCHIVE, {"slug": "acme--secret"}))["modelArchive"]
    again = data(gql(alice, doc.MODEL_UPDATE, {"slug": "acme--secret", "input": {"status": "draft"}}))["modelUpdate"]
    assert archived["errors"] == [] and again["errors"][0]["code"] == "invalid_transition"


def test_mutations_on_another_tenants_rows_are_refused(world) -> None:
    # given
    bob = logged_in(world["bob"])
    evaluation_id = ids_seen_by_alice(world)["evaluation"]

    # when
    answers = {
        "private model": data(gql(bob, doc.MODEL_UPDATE, {"slug": "acme--secret", "input": {"description": "x"}}))[
            "modelUpdate"
        ],
        "public model": data(
            gql(bob, doc.MODEL_UPDATE, {"slug": "acme--support-llama", "input": {"description": "x"}})
        )["modelUpdate"],
        "archive": data(gql(bob, doc.MODEL_ARCHIVE, {"slug": "acme--support-llama"}))["modelArchive"],
        "version": data(gql(bob, doc.VERSION_CREATE, {"slug": "acme--support-llama", "input": {"version": "9.0.0"}}))[
            "modelVersionCreate"
        ],
        "dataset": data(gql(bob, doc.DATASET_UPDATE, {"ref": "acme--tickets", "input": {"name": "Mine"}}))[
            "datasetUpdate"
        ],
        "evaluation": data(gql(bob, doc.EVALUATION_UPDATE, {"id": evaluation_id, "input": {"score": 1}}))[
            "evaluationUpdate"
        ],
        "withdrawal": data(gql(bob, doc.EVALUATION_DELETE, {"id": str(world["evaluation"].pk)}))["evaluationDelete"],
        "edge": data(
            gql(
                bob,
                doc.EDGE_ADD,
                {
                    "slug": "acme--support-llama",
                    "input": {
                        "source": {"kind": "dataset", "ref": "acme--tickets"},
                        "target": {"kind": "base_model", "ref": "gpt-2"},
                        "type": "derived_from",
                    },
                },
            )
        )["lineageEdgeAdd"],
    }

    # then what bob cannot see is not found, what he can see he may not change; nothing changed
    codes = {name: [e["code"] for e in answer["errors"]] for name, answer in answers.items()}
    assert codes == {
        "private model": ["not_found"],
        "public model": ["authorization_error"],
        "archive": ["authorization_error"],
        "version": ["authorization_error"],
        "dataset": ["not_found"],
        "evaluation": ["not_found"],
        "withdrawal": ["authorization_error"],
        "edge": ["authorization_error"],
    }
    assert answers["withdrawal"]["ok"] is False
    world["public"].refresh_from_db()
    assert world["public"].description == "" and world["public"].status == "published"
    assert Evaluation.objects.filter(pk=world["hidden_evaluation"].pk, score=50).exists()


def test_api_keys_write_for_their_own_tenant_with_the_publish_scope(world) -> None:
    # given
    _, reader = create_api_key(tenant=world["acme"], actor=world["alice"], name="r", scopes=["read"])
    _, publisher = create_api_key(tenant=world["acme"], actor=world["alice"], name="p", scopes=["publish"])
    _, foreign = create_api_key(tenant=world["globex"], actor=world["bob"], name="g", scopes=["publish"])
    new = {"input": {"slug": "by-key", "name": "By key"}}

    # when
    refused = gql(with_key(reader), doc.MODEL_CREATE, new).json()
    created = data(gql(with_key(publisher), doc.MODEL_CREATE, new))["modelCreate"]
    hidden = data(gql(with_key(foreign), doc.MODEL_UPDATE, {"slug": "acme--secret", "input": {"name": "Mine"}}))

    # then
    assert refused["errors"][0]["extensions"]["code"] == "insufficient_scope"
    assert created == {
        "model": {
            "handle": "acme--by-key",
            "status": "draft",
            "visibility": "private",
            "commercialUse": False,
            "tags": [],
        },
        "errors": [],
    }
    assert hidden["modelUpdate"]["errors"][0]["code"] == "not_found"


@pytest.mark.parametrize(
    ("number", "field"),
    [("1e400", "hyperparameters.lr"), ("NaN", "hyperparameters.lr"), ("-1e400", "hyperparameters.lr")],
)
def test_a_training_run_with_a_number_out_of_range_is_an_error_naming_it(world, number: str, field: str) -> None:
    # given: the variables as sent, with a number json reads as infinity (or NaN, which it also reads)
    body = json.dumps(
        {"query": doc.RUN_CREATE, "variables": {"input": {"name": "sft-9", "hyperparameters": {"lr": "NUMBER"}}}}
    ).replace('"NUMBER"', number)
    before = TrainingRun.objects.count()
    # when
    response = logged_in(world["alice"]).post("/graphql", body, content_type="application/json")
    # then
    assert [error["field"] for error in data(response)["trainingRunCreate"]["errors"]] == [field]
    assert TrainingRun.objects.count() == before


def test_training_runs_need_an_admin_of_the_acting_tenant(world) -> None:
    viewer = UserFactory(username="victor")
    MembershipFactory(tenant=world["acme"], user=viewer, role=Role.VIEWER)
    refused = data(gql(logged_in(viewer), doc.RUN_CREATE, {"input": {"name": "nope"}}))["trainingRunCreate"]
    assert refused["errors"][0]["code"] == "authorization_error"
    assert data(gql(logged_in(viewer), doc.TRAINING_RUNS))["trainingRuns"]["totalCount"] == 1


# --- No N+1 --------------------------------------------------------------------------------------------------


def test_nested_lists_run_in_a_constant_number_of_queries(world, settings) -> None:
    # given 55 visible models with two versions of two evaluations each, served by a service version
    settings.MARKETPLACE_GATEWAY = {"MAX_COST": 100_000}  # the query's cost is not what this test is about
    served = service_version(world["acme"], "bulk")
    for index in range(55):
        model = CatalogModelFactory(owner=world["acme"], slug=f"bulk-{index:02d}", name=f"Bulk {index:02d}")
        for number in ("1.0.0", "1.1.0"):
            version = ModelVersionFactory(model=model, version=number)
            ServedBy.objects.create(model_version=version, service_version=served)
            Evaluation.objects.bulk_create(
                Evaluation(model_version=version, benchmark=name, benchmark_name=name, dimension="accuracy", score=50)
                for name in ("mmlu", "hellaswag")
            )
    client = logged_in(world["bob"])
    data(gql(client, doc.NESTED, {"first": 1}))  # the session is loaded once

    # when
    counts = {}
    for first in (5, 50):
        with CaptureQueriesContext(connection) as queries:
            page = data(gql(client, doc.NESTED, {"first": first}))["catalogModels"]["edges"]
        counts[first] = len(queries.captured_queries)
        assert len(page) == first
        assert all(
            len(edge["node"]["versions"]["edges"]) == 2
            for edge in page
            if edge["node"]["handle"] != "acme--support-llama"
        )

    # then
    assert counts[5] == counts[50], counts
    versions = page[0]["node"]["versions"]["edges"]
    assert versions[0]["node"]["evaluations"]["edges"][0]["node"]["version"] == "1.1.0"


def test_the_model_version_serving_a_service_version_loads_for_a_page_at_once(world) -> None:
    # given three service versions: two serve acme's public model, one its private model
    public_version = world["version"]
    private_version = world["private"].versions.get()
    first, second, private = (service_version(world["acme"], slug) for slug in ("a", "b", "c"))
    ServedBy.objects.create(model_version=public_version, service_version=first)
    ServedBy.objects.create(model_version=public_version, service_version=second)
    ServedBy.objects.create(model_version=private_version, service_version=private)

    def info_for(user: Any) -> Any:
        request = RequestFactory().post("/graphql")
        request.user, request.auth = user, None
        return SimpleNamespace(context=request)

    # when bob's page of the three is resolved
    info = info_for(world["bob"])
    announce_service_versions(info, [first, second, private.pk])
    with CaptureQueriesContext(connection) as queries:
        found = [model_version_for_service_version(info, sv) for sv in (first, second, str(private.pk))]

    # then one query loaded them all (after the viewer's own), and the private model's version stays hidden
    assert found == [public_version, public_version, None]
    assert len([q for q in queries.captured_queries if "catalog_servedby" in q["sql"]]) == 1
    alice_info = info_for(world["alice"])
    assert model_version_for_service_version(alice_info, private) == private_version
    assert model_version_for_service_version(info_for(AnonymousUser()), first) == public_version
