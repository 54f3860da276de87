"""Lineage over the REST API: edges added by the owner's admins, cycles refused with 409, the graph ready to draw."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog import services
from apps.catalog.models import LineageEdge
from apps.tenancy.models import Tenant
from tests.apps.tenancy.api_support import assert_error, client_for

pytestmark = pytest.mark.django_db

API = "/api/v1"


@pytest.fixture
def model(published: Any, make_version: Any) -> Any:
    model = published(base_model_name="Llama-3-8B", base_model_provider="meta-llama")
    make_version(model, "1.1.0")
    return model


def edge(source: tuple[str, str], target: tuple[str, str], kind: str) -> dict[str, Any]:
    return {
        "source": {"kind": source[0], "ref": source[1]},
        "target": {"kind": target[0], "ref": target[1]},
        "type": kind,
    }


def test_the_owner_records_edges_and_reads_the_graph(acme: Tenant, alice: Any, bob: Any, model: Any) -> None:
    # given
    services.create_dataset(owner=acme, actor=alice, slug="tickets", values={"name": "Tickets", "visibility": "public"})
    client = client_for(alice)

    # when
    added = client.post(
        f"{API}/models/{model.handle}/lineage/",
        edge(("model_version", f"{model.handle}@1.1.0"), ("dataset", "acme--tickets"), "trained_on"),
        format="json",
    )
    merged = client.post(
        f"{API}/models/{model.handle}/lineage/",
        edge(("model_version", f"{model.handle}@1.1.0"), ("model_version", f"{model.handle}@1.0.0"), "derived_from"),
        format="json",
    )
    graph = client_for(bob).get(f"{API}/models/{model.handle}/lineage/?depth=2").json()

    # then
    assert added.status_code == 201, added.content
    assert merged.status_code == 201, merged.content
    labels = {n["id"]: n["label"] for n in graph["nodes"]}
    assert set(labels.values()) == {
        "acme--support-llama@1.0.0",
        "acme--support-llama@1.1.0",
        "meta-llama/Llama-3-8B",
        "Tickets",
    }
    assert {(labels[e["source"]], e["type"], labels[e["target"]]) for e in graph["edges"]} == {
        ("acme--support-llama@1.0.0", "derived_from", "meta-llama/Llama-3-8B"),
        ("acme--support-llama@1.1.0", "derived_from", "meta-llama/Llama-3-8B"),
        ("acme--support-llama@1.1.0", "derived_from", "acme--support-llama@1.0.0"),
        ("acme--support-llama@1.1.0", "trained_on", "Tickets"),
    }
    assert all({"x", "y", "layer", "order", "depth", "relation"} <= set(n) for n in graph["nodes"])
    assert graph["width"] > 0 and graph["height"] > 0


def test_a_cycle_is_a_409_and_is_not_recorded(acme: Tenant, alice: Any, model: Any) -> None:
    # given 1.1.0 derived from 1.0.0
    client = client_for(alice)
    newer, older = ("model_version", f"{model.handle}@1.1.0"), ("model_version", f"{model.handle}@1.0.0")
    client.post(f"{API}/models/{model.handle}/lineage/", edge(newer, older, "derived_from"), format="json")
    edges = LineageEdge.objects.count()

    # when
    response = client.post(f"{API}/models/{model.handle}/lineage/", edge(older, newer, "merged_from"), format="json")

    # then
    body = assert_error(response, 409, "lineage_cycle")
    assert body["error"]["details"]["cycle"] == [
        "acme--support-llama@1.1.0",
        "acme--support-llama@1.0.0",
        "acme--support-llama@1.1.0",
    ]
    assert LineageEdge.objects.count() == edges


def test_bad_edges_are_a_400_naming_the_fields(acme: Tenant, alice: Any, model: Any) -> None:
    # when
    response = client_for(alice).post(
        f"{API}/models/{model.handle}/lineage/",
        {"source": {"kind": "dataset", "ref": "acme--missing", "extra": 1}, "target": "x", "type": "likes"},
        format="json",
    )

    # then
    fields = assert_error(response, 400, "validation_error")["error"]["details"]["fields"]
    assert set(fields) == {"type", "source.extra", "target"}


@pytest.mark.parametrize(
    ("query", "field"),
    [("?depth=-1", "depth"), ("?depth=51", "depth"), ("?depth=x", "depth"), ("?version=9.9.9", "version")],
)
def test_bad_lineage_parameters_are_a_400(acme: Tenant, alice: Any, model: Any, query: str, field: str) -> None:
    response = client_for(alice).get(f"{API}/models/{model.handle}/lineage/{query}")
    assert_error(response, 400, "validation_error", field=field)


def test_one_versions_lineage_and_its_depth(acme: Tenant, alice: Any, model: Any) -> None:
    # when
    graph = client_for(alice).get(f"{API}/models/{model.handle}/lineage/?version=1.0.0&depth=0").json()

    # then
    assert [n["label"] for n in graph["nodes"]] == ["acme--support-llama@1.0.0"]
    assert graph["edges"] == []


def test_the_lineage_endpoint_costs_the_same_queries_at_any_depth(acme: Tenant, alice: Any, model: Any) -> None:
    # given a chain of 30 datasets feeding the model
    datasets = [
        services.create_dataset(owner=acme, actor=alice, slug=f"ds{i}", values={"name": f"DS{i}"}) for i in range(30)
    ]
    for later, earlier in zip(datasets[1:], datasets, strict=False):
        services.add_lineage_edge(
            owner=acme,
            actor=alice,
            source={"kind": "dataset", "ref": str(earlier.pk)},
            target={"kind": "dataset", "ref": str(later.pk)},
            edge_type="preprocessed_by",
        )
    services.add_lineage_edge(
        owner=acme,
        actor=alice,
        source={"kind": "model_version", "ref": f"{model.handle}@1.1.0"},
        target={"kind": "dataset", "ref": str(datasets[0].pk)},
        edge_type="trained_on",
    )
    client = client_for(alice)

    def run(depth: int) -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            nodes = client.get(f"{API}/models/{model.handle}/lineage/?depth={depth}").json()["nodes"]
        return len(captured), len(nodes)

    # when
    (shallow, few), (deep, many) = run(1), run(50)

    # then
    assert few < many == 33  # 30 datasets, 2 versions, the base model
    assert shallow == deep
