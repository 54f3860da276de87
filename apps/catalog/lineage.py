"""Lineage DAG queries in a fixed number of SQL statements (recursive CTEs on PostgreSQL and SQLite), and layout.

Edges point from the derived node to what it comes from (`version —trained_on→ dataset`): walking *up* follows
edges to ancestors, walking *down* follows them backwards to descendants. Every walk carries a depth and stops at
the limit; the recursive term uses `UNION` (not `UNION ALL`), so each (node, depth) pair is produced once and the
work is bounded by nodes × depth even on a graph with many paths, and a walk ends even on corrupted (cyclic) data.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from django.db import connection

from apps.catalog.conf import catalog_settings
from apps.catalog.models import EdgeType, LineageEdge, LineageNode, NodeKind
from llm_infra_django.errors import ValidationError

Direction = Literal["up", "down"]
UP: Direction = "up"
DOWN: Direction = "down"

# Which kinds of node each edge type may join: (allowed source kinds, allowed target kinds).
EDGE_RULES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    EdgeType.DERIVED_FROM: (
        frozenset({NodeKind.MODEL_VERSION, NodeKind.TRAINING_RUN}),
        frozenset({NodeKind.BASE_MODEL, NodeKind.MODEL_VERSION, NodeKind.TRAINING_RUN}),
    ),
    EdgeType.TRAINED_ON: (
        frozenset({NodeKind.MODEL_VERSION, NodeKind.TRAINING_RUN}),
        frozenset({NodeKind.DATASET}),
    ),
    EdgeType.EVALUATED_BY: (frozenset({NodeKind.MODEL_VERSION}), frozenset({NodeKind.EVALUATION})),
    EdgeType.MERGED_FROM: (
        frozenset({NodeKind.MODEL_VERSION}),
        frozenset({NodeKind.MODEL_VERSION, NodeKind.BASE_MODEL}),
    ),
    EdgeType.PREPROCESSED_BY: (
        frozenset({NodeKind.DATASET}),
        frozenset({NodeKind.DATASET, NodeKind.TRAINING_RUN}),
    ),
}


def edge_rule_error(edge_type: str, source_kind: str, target_kind: str) -> str | None:
    """Why an edge of this type may not join these kinds, or None when it may."""
    sources, targets = EDGE_RULES[edge_type]
    if source_kind not in sources:
        return f"A {edge_type} edge starts at a {' or '.join(sorted(sources))} node, not a {source_kind}."
    if target_kind not in targets:
        return f"A {edge_type} edge ends at a {' or '.join(sorted(targets))} node, not a {target_kind}."
    return None


def clean_depth(value: Any, path: str = "depth") -> int:
    """A depth limit from user input: the default when absent, else a whole number from 0 to the maximum."""
    maximum = int(catalog_settings.LINEAGE_MAX_DEPTH)
    if value is None or value == "":
        return int(catalog_settings.LINEAGE_DEFAULT_DEPTH)
    try:
        depth = int(str(value))
    except ValueError:
        raise ValidationError(fields={path: [f"A whole number from 0 to {maximum}."]}) from None
    if not 0 <= depth <= maximum:
        raise ValidationError(fields={path: [f"A whole number from 0 to {maximum}."]})
    return depth


# --- SQL -----------------------------------------------------------------------------------------------------


def _tables() -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(LineageNode._meta.db_table), quote(LineageEdge._meta.db_table)


def _walk_cte(name: str, direction: Direction, starts: int) -> str:
    """`name(node_id, depth)`: the start nodes at depth 0 and every node within the limit in `direction`.

    Parameters: the `starts` start node ids, then the depth limit."""
    node, edge = _tables()
    here, there = ("source_id", "target_id") if direction == UP else ("target_id", "source_id")
    marks = ", ".join(["%s"] * starts)
    return (
        f"{name}(node_id, depth) AS ("  # noqa: S608 (names only; values bound)
        f"SELECT id, 0 FROM {node} WHERE id IN ({marks}) "
        f"UNION "
        f"SELECT e.{there}, w.depth + 1 FROM {edge} e JOIN {name} w ON e.{here} = w.node_id WHERE w.depth < %s)"
    )


def _walks(start_ids: Sequence[int], directions: Sequence[Direction], max_depth: int) -> tuple[str, list[Any]]:
    ctes, params = [], []
    for direction in directions:
        ctes.append(_walk_cte(f"walk_{direction}", direction, len(start_ids)))
        params += [*start_ids, max_depth]
    return "WITH RECURSIVE " + ", ".join(ctes), params


def _directions(direction: Direction | Literal["both"]) -> list[Direction]:
    return [UP, DOWN] if direction == "both" else [direction]


def walk(start_ids: Sequence[int], direction: Direction, max_depth: int) -> dict[int, int]:
    """{node id: smallest depth} of the nodes within `max_depth` of the start nodes (one query)."""
    if not start_ids:
        return {}
    head, params = _walks(start_ids, [direction], max_depth)
    with connection.cursor() as cursor:
        cursor.execute(f"{head} SELECT node_id, MIN(depth) FROM walk_{direction} GROUP BY node_id", params)  # noqa: S608 (names only; values bound)
        return {int(node_id): int(depth) for node_id, depth in cursor.fetchall()}


def reaches(from_id: int, to_id: int) -> bool:
    """Whether a directed path leads from one node to the other (any length; one query)."""
    if from_id == to_id:
        return True
    _node, edge = _tables()
    sql = (
        "WITH RECURSIVE reach(node_id) AS ("  # noqa: S608 (names only; values bound)
        "SELECT CAST(%s AS BIGINT) "
        f"UNION SELECT e.target_id FROM {edge} e JOIN reach r ON e.source_id = r.node_id) "
        "SELECT 1 FROM reach WHERE node_id = %s LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [from_id, to_id])
        return cursor.fetchone() is not None


def any_path(from_id: int, to_id: int) -> list[LineageNode]:
    """A shortest path of any length between two nodes (empty when none): one query collects the edges reachable
    from the start (each once, so bounded by the graph's size), a breadth-first search picks the path, one query
    loads its nodes."""
    _node, edge = _tables()
    sql = (
        "WITH RECURSIVE reach(node_id) AS ("  # noqa: S608 (names only; values bound)
        "SELECT CAST(%s AS BIGINT) "
        f"UNION SELECT e.target_id FROM {edge} e JOIN reach r ON e.source_id = r.node_id) "
        f"SELECT e.source_id, e.target_id FROM {edge} e JOIN reach r ON e.source_id = r.node_id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [from_id])
        following: dict[int, list[int]] = defaultdict(list)
        for source, target in cursor.fetchall():
            following[int(source)].append(int(target))
    previous: dict[int, int | None] = {from_id: None}
    queue = deque([from_id])
    while queue and to_id not in previous:
        current = queue.popleft()
        for target in sorted(following[current]):
            if target not in previous:
                previous[target] = current
                queue.append(target)
    if to_id not in previous:
        return []
    ids: list[int] = []
    step: int | None = to_id
    while step is not None:
        ids.append(step)
        step = previous[step]
    by_id = LineageNode.objects.in_bulk(ids)
    return [by_id[i] for i in reversed(ids)]


@dataclass
class Subgraph:
    """Nodes (with `up_depth`/`down_depth` attributes: distance from the start nodes, None when not reached that
    way) and the edges between them."""

    start_ids: list[int]
    nodes: list[LineageNode]
    edges: list[LineageEdge]
    max_depth: int


def subgraph(start_ids: Sequence[int], direction: Direction | Literal["both"], max_depth: int) -> Subgraph:
    """The nodes within `max_depth` of the start nodes (ancestors, descendants or both) and the edges between
    them: two queries whatever the depth."""
    start = [int(i) for i in start_ids]
    if not start:
        return Subgraph([], [], [], max_depth)
    directions = _directions(direction)
    head, params = _walks(start, directions, max_depth)
    node, edge = _tables()
    branches = " UNION ALL ".join(
        f"SELECT node_id, {'depth' if d == UP else 'NULL'} AS up_d, {'depth' if d == DOWN else 'NULL'} AS down_d "  # noqa: S608 (names only; values bound)
        f"FROM walk_{d}"
        for d in directions
    )
    nodes = list(
        LineageNode.objects.raw(
            f"{head} SELECT n.*, r.up_depth, r.down_depth FROM {node} n JOIN ("  # noqa: S608 (names only; values bound)
            f"SELECT node_id, MIN(up_d) AS up_depth, MIN(down_d) AS down_depth FROM ({branches}) x GROUP BY node_id"
            f") r ON r.node_id = n.id ORDER BY n.id",
            params,
        )
    )
    reached = " UNION ".join(f"SELECT node_id FROM walk_{d}" for d in directions)  # noqa: S608 (names only; values bound)
    edges = list(
        LineageEdge.objects.raw(
            f"{head}, reached(node_id) AS ({reached}) "  # noqa: S608 (names only; values bound)
            f"SELECT e.* FROM {edge} e WHERE e.source_id IN (SELECT node_id FROM reached) "
            f"AND e.target_id IN (SELECT node_id FROM reached) ORDER BY e.id",
            params,
        )
    )
    return Subgraph(start, nodes, edges, max_depth)


def related(node_id: int, direction: Direction, max_depth: int) -> list[tuple[LineageNode, int]]:
    """Ancestors (`up`) or descendants (`down`) of a node within `max_depth`, with their smallest depth, nearest
    first (the node itself excluded): one query."""
    head, params = _walks([node_id], [direction], max_depth)
    node, _edge = _tables()
    rows = LineageNode.objects.raw(
        f"{head} SELECT n.*, r.depth FROM {node} n JOIN ("  # noqa: S608 (names only; values bound)
        f"SELECT node_id, MIN(depth) AS depth FROM walk_{direction} GROUP BY node_id"
        f") r ON r.node_id = n.id WHERE n.id <> %s ORDER BY r.depth, n.id",
        [*params, node_id],
    )
    return [(row, int(row.depth)) for row in rows]


def ancestors(node_id: int, max_depth: int) -> list[tuple[LineageNode, int]]:
    return related(node_id, UP, max_depth)


def descendants(node_id: int, max_depth: int) -> list[tuple[LineageNode, int]]:
    return related(node_id, DOWN, max_depth)


@dataclass
class Path:
    """A shortest directed path: its nodes from the first to the last, and the edge types between them."""

    nodes: list[LineageNode]
    edge_types: list[str]

    @property
    def length(self) -> int:
        return len(self.edge_types)


def shortest_path(from_id: int, to_id: int, max_depth: int) -> Path | None:
    """A shortest path following edges from one node to the other, at most `max_depth` edges long (two queries).

    One query walks forward from the start and backward from the end and keeps the edges (u→v) with
    dist(start, u) + 1 + dist(v, end) within the limit; those at the minimum are exactly the edges of shortest
    paths, and one is followed from the start (lowest node ids first, so the answer is deterministic)."""
    if from_id == to_id:
        found = LineageNode.objects.filter(pk=from_id).first()
        return Path([found], []) if found else None
    _node, edge = _tables()
    forward, backward = _walk_cte("fwd", UP, 1), _walk_cte("bwd", DOWN, 1)
    sql = (
        f"WITH RECURSIVE {forward}, {backward} "  # noqa: S608 (names only; values bound)
        f"SELECT e.source_id, e.target_id, e.edge_type, f.d, g.d FROM {edge} e "
        "JOIN (SELECT node_id, MIN(depth) AS d FROM fwd GROUP BY node_id) f ON f.node_id = e.source_id "
        "JOIN (SELECT node_id, MIN(depth) AS d FROM bwd GROUP BY node_id) g ON g.node_id = e.target_id "
        "WHERE f.d + g.d + 1 <= %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [from_id, max_depth, to_id, max_depth, max_depth])
        rows = [(int(s), int(t), kind, int(fd), int(gd)) for s, t, kind, fd, gd in cursor.fetchall()]
    if not rows:
        return None
    length = min(fd + gd + 1 for _s, _t, _k, fd, gd in rows)
    step: dict[tuple[int, int], list[tuple[int, str]]] = defaultdict(list)
    for source, target, kind, fd, gd in rows:
        if fd + gd + 1 == length:
            step[(source, fd)].append((target, kind))
    ids, kinds, current = [from_id], [], from_id
    for depth in range(length):
        target, kind = min(step[(current, depth)])
        ids.append(target)
        kinds.append(kind)
        current = target
    by_id = LineageNode.objects.in_bulk(ids)
    return Path([by_id[i] for i in ids], kinds)


# --- Checks --------------------------------------------------------------------------------------------------


def find_cycle(node_ids: Iterable[int], edges: Iterable[tuple[int, int]]) -> list[int]:
    """Nodes left on cycles after Kahn's topological sort (empty for a DAG)."""
    indegree: dict[int, int] = dict.fromkeys(node_ids, 0)
    outgoing: dict[int, list[int]] = defaultdict(list)
    for source, target in edges:
        outgoing[source].append(target)
        indegree[target] = indegree.get(target, 0) + 1
        indegree.setdefault(source, 0)
    queue = deque(n for n, d in indegree.items() if d == 0)
    while queue:
        current = queue.popleft()
        for target in outgoing[current]:
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    return sorted(n for n, d in indegree.items() if d > 0)


# --- Layout --------------------------------------------------------------------------------------------------

NODE_WIDTH = 190
NODE_HEIGHT = 46
GAP_X = 30
GAP_Y = 56
PADDING = 20
KIND_ORDER = {kind: index for index, kind in enumerate(NodeKind.values)}


def _reduce_crossings(by_layer: dict[int, list[LineageNode]], pairs: list[tuple[int, int]], sweeps: int = 2) -> None:
    """Barycenter heuristic: order each layer by the mean position of its neighbours in the layer sweep's previous
    layers (down, then up), which removes most edge crossings of small graphs."""
    neighbours: dict[int, list[int]] = defaultdict(list)
    for source, target in pairs:
        neighbours[source].append(target)
        neighbours[target].append(source)
    levels = sorted(by_layer)
    for _ in range(sweeps):
        for order in (levels, list(reversed(levels))):
            position: dict[int, float] = {}
            for level in order:
                row = by_layer[level]
                current = {n.id: index for index, n in enumerate(row)}

                def key(
                    n: LineageNode, current: dict[int, int] = current, position: dict[int, float] = position
                ) -> Any:
                    placed = [position[m] for m in neighbours[n.id] if m in position]
                    return (sum(placed) / len(placed) if placed else current[n.id], current[n.id])

                row.sort(key=key)
                for index, n in enumerate(row):
                    position[n.id] = index - (len(row) - 1) / 2


@dataclass
class Placed:
    """A node's place in the drawing: its layer (0 = top, the oldest ancestors), order in the layer, and x/y of its
    box's top-left corner."""

    layer: int
    order: int
    x: int
    y: int


@dataclass
class Layout:
    """Boxes of the nodes, the bends of edges spanning several layers (from the derived end), and the size."""

    places: dict[int, Placed] = field(default_factory=dict)
    routes: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class _Placeholder:
    """Where an edge crosses a layer it does not stop in."""

    id: int
    kind: str = "~"
    label: str = ""


PLACEHOLDER_WIDTH = 16


def _width(item: Any) -> int:
    return PLACEHOLDER_WIDTH if isinstance(item, _Placeholder) else NODE_WIDTH


def layout(nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> Layout:
    """Layered drawing positions: ancestors above what derives from them, evaluations just below their version.

    A node's layer is the longest chain of (non-evaluation) edges from it up to a root; evaluations sit one layer
    below the deepest version they evaluate. Within a layer nodes are ordered by kind, then label."""
    ids = [n.id for n in nodes]
    known = set(ids)
    structural = [
        (e.source_id, e.target_id)
        for e in edges
        if e.edge_type != EdgeType.EVALUATED_BY and e.source_id in known and e.target_id in known
    ]
    evaluations = [
        (e.source_id, e.target_id)
        for e in edges
        if e.edge_type == EdgeType.EVALUATED_BY and e.source_id in known and e.target_id in known
    ]
    # Longest path to a root, in topological order of the structural edges (targets before sources).
    targets_of: dict[int, list[int]] = defaultdict(list)
    sources_of: dict[int, list[int]] = defaultdict(list)
    for source, target in structural:
        targets_of[source].append(target)
        sources_of[target].append(source)
    remaining = {n: len(targets_of[n]) for n in ids}
    queue = deque(sorted(n for n, count in remaining.items() if count == 0))
    layer: dict[int, int] = {}
    while queue:
        current = queue.popleft()
        layer[current] = max((layer[t] + 1 for t in targets_of[current]), default=0)
        for source in sources_of[current]:
            remaining[source] -= 1
            if remaining[source] == 0:
                queue.append(source)
    for n in ids:  # only reached on corrupted (cyclic) data: keep drawing
        layer.setdefault(n, 0)
    for version, evaluation in evaluations:
        if not targets_of[evaluation]:
            layer[evaluation] = max(layer.get(evaluation, 0), layer[version] + 1)
    by_layer: dict[int, list[Any]] = defaultdict(list)
    for n in nodes:
        by_layer[layer[n.id]].append(n)
    # An edge spanning several layers passes through a placeholder in each layer between its ends, so that it is
    # drawn around the boxes in those layers instead of through them.
    chains: dict[int, tuple[list[int], bool]] = {}
    pairs: list[tuple[int, int]] = []
    for e in edges:
        if e.source_id not in known or e.target_id not in known:
            continue
        low, high = layer[e.source_id], layer[e.target_id]
        step = -1 if high < low else 1
        chain = []
        for level in range(low + step, high, step):
            placeholder = _Placeholder(-(len(layer) + 1))
            layer[placeholder.id] = level
            by_layer[level].append(placeholder)
            chain.append(placeholder.id)
        chains[e.pk] = (chain, high < low)
        hops = [e.source_id, *chain, e.target_id]
        pairs += list(pairwise(hops))
    for row in by_layer.values():
        row.sort(key=lambda n: (KIND_ORDER.get(n.kind, 99), n.label, n.id))
    _reduce_crossings(by_layer, pairs)

    def row_width(row: list[Any]) -> int:
        return sum(_width(n) for n in row) + max(len(row) - 1, 0) * GAP_X

    width = PADDING * 2 + max((row_width(row) for row in by_layer.values()), default=NODE_WIDTH)
    result = Layout(width=width, height=PADDING * 2 + (max(by_layer, default=0) + 1) * (NODE_HEIGHT + GAP_Y) - GAP_Y)
    centres: dict[int, int] = {}
    for level, row in by_layer.items():
        left = (width - row_width(row)) // 2
        order = 0
        for item in row:
            y = PADDING + level * (NODE_HEIGHT + GAP_Y)
            if isinstance(item, _Placeholder):
                centres[item.id] = left + _width(item) // 2
            else:
                result.places[item.id] = Placed(layer=level, order=order, x=left, y=y)
                order += 1
            left += _width(item) + GAP_X
    for edge_id, (chain, upward) in chains.items():
        points: list[tuple[int, int]] = []
        for placeholder in chain:
            top = PADDING + layer[placeholder] * (NODE_HEIGHT + GAP_Y)
            entry, exit_ = (top + NODE_HEIGHT, top) if upward else (top, top + NODE_HEIGHT)
            points += [(centres[placeholder], entry), (centres[placeholder], exit_)]
        result.routes[edge_id] = points
    return result
