"""Lineage DAG: cycles refused at insert, typed edges, and walks/paths correct and in a fixed number of queries."""

from __future__ import annotations

import random
from collections import deque
from itertools import pairwise
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.catalog import lineage, selectors, services
from apps.catalog.exceptions import LineageCycleError
from apps.catalog.models import EdgeType, LineageEdge, LineageGraph, LineageNode, NodeKind
from apps.catalog.services.graph import connect
from apps.tenancy.models import Tenant
from llm_infra_django.errors import ConflictError, ValidationError
from tests.apps.tenancy.factories import TenantFactory

pytestmark = pytest.mark.django_db


def ref(kind: str, value: Any) -> dict[str, str]:
    return {"kind": kind, "ref": str(value)}


def version_ref(version: Any) -> dict[str, str]:
    return ref(NodeKind.MODEL_VERSION, version.pk)


def test_creating_a_version_records_it_derived_from_its_base_model(make_model: Any, make_version: Any) -> None:
    # given a model fine-tuned from a base model
    model = make_model(base_model_name="Llama-3-8B", base_model_provider="meta-llama")

    # when
    version = make_version(model, "1.0.0")

    # then
    edge = LineageEdge.objects.select_related("source", "target").get()
    assert (edge.source.kind, edge.source.ref) == (NodeKind.MODEL_VERSION, str(version.pk))
    assert (edge.target.kind, edge.target.label, edge.edge_type) == (
        NodeKind.BASE_MODEL,
        "meta-llama/Llama-3-8B",
        EdgeType.DERIVED_FROM,
    )


def test_a_direct_cycle_is_refused(acme: Tenant, alice: Any, make_model: Any, make_version: Any) -> None:
    # given v2 merged from v1
    model = make_model()
    v1, v2 = make_version(model, "1.0.0"), make_version(model, "2.0.0")
    services.add_lineage_edge(
        owner=acme, actor=alice, source=version_ref(v2), target=version_ref(v1), edge_type="merged_from"
    )

    # when / then v1 merged from v2 is refused
    with pytest.raises(LineageCycleError) as caught:
        services.add_lineage_edge(
            owner=acme, actor=alice, source=version_ref(v1), target=version_ref(v2), edge_type="merged_from"
        )
    assert caught.value.status_code == 409
    assert caught.value.details["cycle"] == [
        "acme--support-llama@2.0.0",
        "acme--support-llama@1.0.0",
        "acme--support-llama@2.0.0",
    ]
    assert LineageEdge.objects.count() == 1


def test_a_self_loop_is_refused(acme: Tenant, alice: Any, make_model: Any, make_version: Any) -> None:
    # given
    v1 = make_version(make_model(), "1.0.0")

    # when / then
    with pytest.raises(LineageCycleError):
        services.add_lineage_edge(
            owner=acme, actor=alice, source=version_ref(v1), target=version_ref(v1), edge_type="merged_from"
        )


def test_a_long_cycle_is_refused_and_nothing_is_written(acme: Tenant, alice: Any) -> None:
    # given a chain of 60 datasets, each preprocessed from the previous one
    datasets = [
        services.create_dataset(owner=acme, actor=alice, slug=f"d{i}", values={"name": f"D{i}"}) for i in range(60)
    ]
    for later, earlier in zip(datasets[1:], datasets, strict=False):
        services.add_lineage_edge(
            owner=acme,
            actor=alice,
            source=ref("dataset", later.pk),
            target=ref("dataset", earlier.pk),
            edge_type="preprocessed_by",
        )
    nodes, edges = LineageNode.objects.count(), LineageEdge.objects.count()

    # when the first would be preprocessed from the last (closing a 60-edge cycle)
    with pytest.raises(LineageCycleError) as caught:
        services.add_lineage_edge(
            owner=acme,
            actor=alice,
            source=ref("dataset", datasets[0].pk),
            target=ref("dataset", datasets[-1].pk),
            edge_type="preprocessed_by",
        )

    # then the cycle is reported in full and the graph is unchanged
    assert len(caught.value.details["cycle"]) == 61
    assert (LineageNode.objects.count(), LineageEdge.objects.count()) == (nodes, edges)


def test_a_refused_edge_leaves_no_node_behind(acme: Tenant, alice: Any) -> None:
    # given an edge whose kinds break the rules and whose base-model node does not exist yet
    dataset = services.create_dataset(owner=acme, actor=alice, slug="dd", values={"name": "D"})
    before = LineageNode.objects.count()

    # when
    with pytest.raises(ValidationError) as caught:
        services.add_lineage_edge(
            owner=acme,
            actor=alice,
            source=ref("dataset", dataset.pk),
            target=ref("base_model", "brand-new/base"),
            edge_type="derived_from",
        )

    # then
    assert "type" in caught.value.details["fields"]
    assert LineageNode.objects.count() == before


def test_a_duplicate_edge_is_a_conflict(acme: Tenant, alice: Any, make_model: Any, make_version: Any) -> None:
    # given
    model = make_model()
    v1, v2 = make_version(model, "1.0.0"), make_version(model, "1.1.0")
    args = {"source": version_ref(v2), "target": version_ref(v1), "edge_type": "derived_from"}
    services.add_lineage_edge(owner=acme, actor=alice, **args)

    # when / then
    with pytest.raises(ConflictError):
        services.add_lineage_edge(owner=acme, actor=alice, **args)


def test_references_name_the_bad_field(acme: Tenant, alice: Any, globex: Tenant, bob: Any) -> None:
    # given a dataset of another tenant
    foreign = services.create_dataset(owner=globex, actor=bob, slug="theirs", values={"name": "Theirs"})

    # when
    with pytest.raises(ValidationError) as caught:
        services.add_lineage_edge(
            owner=acme,
            actor=alice,
            source={"kind": "spaceship", "ref": "x"},
            target=ref("dataset", foreign.pk),
            edge_type="sideways",
        )

    # then another tenant's dataset is unknown here, like a missing one
    assert set(caught.value.details["fields"]) == {"type", "source.kind", "target.ref"}


# --- Generated DAG ------------------------------------------------------------------------------------------


def build_dag(size: int = 1000, seed: int = 7) -> tuple[list[LineageNode], list[tuple[int, int]]]:
    """A random DAG: node i points at 1-3 earlier nodes among the 40 before it (so depths reach the hundreds)."""
    rng = random.Random(seed)
    graph = LineageGraph.objects.create(owner=TenantFactory())
    nodes = LineageNode.objects.bulk_create(
        [LineageNode(graph=graph, kind=NodeKind.MODEL_VERSION, ref=str(i), label=f"n{i}") for i in range(size)]
    )
    pairs: set[tuple[int, int]] = set()
    for i in range(1, size):
        for j in rng.sample(range(max(0, i - 40), i), k=min(i, rng.randint(1, 3))):
            pairs.add((i, j))
    LineageEdge.objects.bulk_create(
        [
            LineageEdge(graph=graph, source=nodes[i], target=nodes[j], edge_type=EdgeType.MERGED_FROM)
            for i, j in sorted(pairs)
        ]
    )
    return nodes, sorted(pairs)


def bfs(start: int, pairs: list[tuple[int, int]], *, up: bool, limit: int) -> dict[int, int]:
    """Reference distances (in node indexes) within `limit`, following edges (up) or against them (down)."""
    neighbours: dict[int, list[int]] = {}
    for source, target in pairs:
        a, b = (source, target) if up else (target, source)
        neighbours.setdefault(a, []).append(b)
    distance = {start: 0}
    queue = deque([start])
    while queue:
        current = queue.popleft()
        if distance[current] == limit:
            continue
        for following in neighbours.get(current, []):
            if following not in distance:
                distance[following] = distance[current] + 1
                queue.append(following)
    return distance


def test_ancestors_and_descendants_match_a_breadth_first_search_on_1000_nodes() -> None:
    # given
    nodes, pairs = build_dag()
    index = {n.id: i for i, n in enumerate(nodes)}

    for start, limit in [(999, 3), (999, 25), (500, 200), (10, 1000), (0, 50)]:
        # when
        up = {index[n.id]: d for n, d in lineage.ancestors(nodes[start].id, limit)}
        down = {index[n.id]: d for n, d in lineage.descendants(nodes[start].id, limit)}

        # then (the reference includes the start node at distance 0)
        expected_up = bfs(start, pairs, up=True, limit=limit)
        expected_down = bfs(start, pairs, up=False, limit=limit)
        expected_up.pop(start)
        expected_down.pop(start)
        assert up == expected_up
        assert down == expected_down


def test_the_depth_limit_is_honoured() -> None:
    # given
    nodes, pairs = build_dag(size=300)

    # when
    found = lineage.ancestors(nodes[299].id, 4)

    # then nothing farther than 4 edges, and everything within 4
    assert max(d for _n, d in found) == 4
    assert len(found) == len(bfs(299, pairs, up=True, limit=4)) - 1
    assert lineage.ancestors(nodes[299].id, 0) == []


def test_shortest_paths_match_a_breadth_first_search() -> None:
    # given
    nodes, pairs = build_dag()
    index = {n.id: i for i, n in enumerate(nodes)}
    edge_set = set(pairs)

    for a, b in [(999, 0), (999, 960), (700, 650), (120, 3), (5, 999)]:
        # when
        path = lineage.shortest_path(nodes[a].id, nodes[b].id, 1000)

        # then its length is the BFS distance and every step is an edge
        expected = bfs(a, pairs, up=True, limit=1000).get(b)
        if expected is None:
            assert path is None
            continue
        assert path is not None and path.length == expected
        steps = [index[n.id] for n in path.nodes]
        assert steps[0] == a and steps[-1] == b
        assert all((x, y) in edge_set for x, y in pairwise(steps))


def test_a_path_longer_than_the_limit_is_not_found() -> None:
    # given
    nodes, pairs = build_dag(size=400)
    distance = bfs(399, pairs, up=True, limit=1000)[0]

    # when / then
    assert lineage.shortest_path(nodes[399].id, nodes[0].id, distance - 1) is None
    assert lineage.shortest_path(nodes[399].id, nodes[0].id, distance).length == distance


def test_query_counts_do_not_grow_with_depth() -> None:
    # given
    nodes, _pairs = build_dag()
    start, end = nodes[999].id, nodes[0].id

    def count(call: Any) -> int:
        with CaptureQueriesContext(connection) as queries:
            call()
        return len(queries)

    # when
    counts = {
        depth: (
            count(lambda depth=depth: lineage.ancestors(start, depth)),
            count(lambda depth=depth: lineage.descendants(end, depth)),
            count(lambda depth=depth: lineage.subgraph([start], "both", depth)),
            count(lambda depth=depth: lineage.shortest_path(start, end, depth)),
        )
        for depth in (1, 100, 1000)
    }

    # then one query per walk, two for a subgraph, two for a path (one when there is none within the depth)
    assert counts[1] == (1, 1, 2, 1)
    assert counts[100] == counts[1000] == (1, 1, 2, 2)


def test_model_lineage_is_ready_to_draw(acme: Tenant, alice: Any, make_model: Any, make_version: Any) -> None:
    # given a version trained (through a run) on a dataset preprocessed from another one, and evaluated
    model = make_model(base_model_name="Llama-3-8B", base_model_provider="meta-llama")
    version = make_version(model, "1.0.0")
    raw = services.create_dataset(owner=acme, actor=alice, slug="raw", values={"name": "Raw"})
    clean = services.create_dataset(owner=acme, actor=alice, slug="clean", values={"name": "Clean"})
    services.add_lineage_edge(
        owner=acme,
        actor=alice,
        source=ref("dataset", clean.pk),
        target=ref("dataset", raw.pk),
        edge_type="preprocessed_by",
    )
    services.create_training_run(
        owner=acme, actor=alice, values={"name": "sft-1"}, datasets=[str(clean.pk)], model_version=str(version.pk)
    )
    services.submit_evaluation(version=version, actor=alice, values={"benchmark": "mmlu", "score": 70})
    model = selectors.get_model(selectors.Viewer.of(acme), model.handle)

    # when
    drawn = selectors.model_lineage(model, depth=5)

    # then every node is placed, edges name node ids, and ancestors sit above what derives from them
    by_label = {n["label"]: n for n in drawn["nodes"]}
    assert set(by_label) == {"acme--support-llama@1.0.0", "meta-llama/Llama-3-8B", "sft-1", "Clean", "Raw", "mmlu"}
    ids = {n["id"] for n in drawn["nodes"]}
    assert all(e["source"] in ids and e["target"] in ids for e in drawn["edges"])
    assert by_label["Raw"]["layer"] < by_label["Clean"]["layer"] < by_label["sft-1"]["layer"]
    assert by_label["sft-1"]["layer"] < by_label["acme--support-llama@1.0.0"]["layer"] < by_label["mmlu"]["layer"]
    assert by_label["acme--support-llama@1.0.0"]["relation"] == "self"
    # an edge crossing layers bends around them: two points per layer crossed
    to_base = next(e for e in drawn["edges"] if e["target"] == by_label["meta-llama/Llama-3-8B"]["id"])
    crossed = by_label["acme--support-llama@1.0.0"]["layer"] - by_label["meta-llama/Llama-3-8B"]["layer"] - 1
    assert len(to_base["points"]) == 2 * crossed > 0
    assert by_label["Raw"] == {**by_label["Raw"], "relation": "ancestor", "depth": 3}

    # and a smaller depth cuts the far ancestors
    near = {n["label"] for n in selectors.model_lineage(model, depth=1)["nodes"]}
    assert near == {"acme--support-llama@1.0.0", "meta-llama/Llama-3-8B", "sft-1", "mmlu"}


def test_validate_lineage_reports_orphans_and_dangling_nodes(
    acme: Tenant, alice: Any, make_model: Any, make_version: Any
) -> None:
    # given an orphan dataset, and a version whose row is then deleted behind the services' back
    services.create_dataset(owner=acme, actor=alice, slug="lonely", values={"name": "Lonely"})
    model = make_model(base_model_name="base")
    version = make_version(model, "1.0.0")
    version.delete()

    # when
    report = selectors.validate_lineage(acme)

    # then
    assert {n.label for n in report.orphans} == {"Lonely"}
    assert {n.label for n in report.dangling_nodes} == {"acme--support-llama@1.0.0"}
    assert len(report.dangling_edges) == 1
    assert not report.ok


def test_validate_lineage_finds_cycles_written_around_the_services(acme: Tenant) -> None:
    # given a cycle inserted directly
    graph = LineageGraph.objects.create(owner=acme)
    a, b = (LineageNode.objects.create(graph=graph, kind="model_version", ref=f"x{i}", label=f"x{i}") for i in "ab")
    LineageEdge.objects.create(graph=graph, source=a, target=b, edge_type="merged_from")
    LineageEdge.objects.create(graph=graph, source=b, target=a, edge_type="merged_from")

    # when
    report = selectors.validate_lineage(acme)

    # then (and the walks still end)
    assert {n.label for n in report.cycle_nodes} == {"xa", "xb"}
    assert {n.label for n, _d in lineage.ancestors(a.id, 50)} == {"xb"}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=30))
def test_an_edge_is_refused_exactly_when_it_would_close_a_cycle(attempts: list[tuple[int, int]]) -> None:
    # given 8 nodes of a fresh graph
    graph = LineageGraph.objects.create(owner=TenantFactory())
    nodes = [
        LineageNode.objects.create(graph=graph, kind=NodeKind.MODEL_VERSION, ref=str(i), label=f"n{i}")
        for i in range(8)
    ]
    accepted: set[tuple[int, int]] = set()

    for source, target in attempts:
        # when
        closes = source == target or bfs(target, sorted(accepted), up=True, limit=100).get(source) is not None
        duplicate = (source, target) in accepted
        try:
            with transaction.atomic():
                connect(graph, nodes[source], nodes[target], EdgeType.MERGED_FROM)
            refused = None
        except (LineageCycleError, ConflictError) as exc:
            refused = exc

        # then
        if closes:
            assert isinstance(refused, LineageCycleError)
        elif duplicate:
            assert isinstance(refused, ConflictError) and not isinstance(refused, LineageCycleError)
        else:
            assert refused is None
            accepted.add((source, target))
    assert lineage.find_cycle(range(8), accepted) == []


def test_the_validate_lineage_command_reports_and_fails_on_problems(
    acme: Tenant, alice: Any, make_model: Any, make_version: Any
) -> None:
    # given a healthy graph
    import io
    import json

    from django.core.management import CommandError, call_command

    version = make_version(make_model(base_model_name="base"), "1.0.0")
    out = io.StringIO()
    call_command("validate_lineage", "--json", stdout=out)
    assert json.loads(out.getvalue())["ok"] is True

    # when its version row disappears behind the services' back
    version.delete()

    # then
    with pytest.raises(CommandError, match="acme"):
        call_command("validate_lineage", "--tenant", "acme", stdout=io.StringIO())
