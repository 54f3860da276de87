"""Server-rendered SVG picture of a lineage subgraph (no script, no external resource)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from itertools import pairwise

from django.utils.html import escape

from apps.catalog.lineage import NODE_HEIGHT, NODE_WIDTH, Layout, layout
from apps.catalog.models import LineageEdge, LineageNode, NodeKind

FILL = {
    NodeKind.BASE_MODEL: "#e8eaf6",
    NodeKind.DATASET: "#e0f2f1",
    NodeKind.TRAINING_RUN: "#fff3e0",
    NodeKind.MODEL_VERSION: "#e3f2fd",
    NodeKind.EVALUATION: "#f3e5f5",
}
STROKE = {
    NodeKind.BASE_MODEL: "#3949ab",
    NodeKind.DATASET: "#00796b",
    NodeKind.TRAINING_RUN: "#ef6c00",
    NodeKind.MODEL_VERSION: "#1565c0",
    NodeKind.EVALUATION: "#7b1fa2",
}
MAX_LABEL = 26


def _short(text: str, limit: int = MAX_LABEL) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _label_spot(
    points: list[tuple[int, int]], length: int, taken: list[tuple[float, float, float, float]]
) -> tuple[float, float]:
    """Where an edge's label goes: along its stretches (halfway along the first one by preference), at the first
    spot overlapping no box and no label already placed; the spot is then taken."""
    width, height = length * 5.6 + 4, 12.0
    candidates = []
    for fraction in (0.5, 0.3, 0.7, 0.15, 0.85):
        for (x1, y1), (x2, y2) in pairwise(points):
            candidates.append((x1 + (x2 - x1) * fraction, y1 + (y2 - y1) * fraction + 3))
    for x, y in candidates:
        box = (x - width / 2, y - height + 2, x + width / 2, y + 2)
        if not any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3] for t in taken):
            taken.append(box)
            return x, y
    return candidates[0]


def _ports(edges: Sequence[LineageEdge], drawing: Layout) -> dict[tuple[int, str], tuple[int, int]]:
    """Where each edge leaves its derived node and reaches its origin: spread along the facing side of each box,
    in the order of the other ends, so that edges sharing a node do not overlap."""
    ends: dict[tuple[int, str], list[tuple[int, int, str]]] = {}
    for edge in edges:
        source, target = drawing.places.get(edge.source_id), drawing.places.get(edge.target_id)
        if source is None or target is None:
            continue
        upward = target.y <= source.y
        route = drawing.routes.get(edge.pk) or []
        toward_target = route[0][0] if route else target.x + NODE_WIDTH // 2
        toward_source = route[-1][0] if route else source.x + NODE_WIDTH // 2
        ends.setdefault((edge.source_id, "top" if upward else "bottom"), []).append((toward_target, edge.pk, "source"))
        ends.setdefault((edge.target_id, "bottom" if upward else "top"), []).append((toward_source, edge.pk, "target"))
    ports: dict[tuple[int, str], tuple[int, int]] = {}
    for (node_id, side), items in ends.items():
        place = drawing.places[node_id]
        items.sort()
        y = place.y if side == "top" else place.y + NODE_HEIGHT
        for index, (_other_x, edge_id, end) in enumerate(items):
            x = place.x + round(NODE_WIDTH * (index + 1) / (len(items) + 1))
            ports[(edge_id, end)] = (x, y)
    return ports


def render_svg(
    nodes: Sequence[LineageNode],
    edges: Sequence[LineageEdge],
    *,
    highlight: Collection[int] = (),
    drawing: Layout | None = None,
) -> str:
    """An `<svg>` document: one box per node (kind and label, full label as tooltip), one arrow per edge from the
    derived node to its origin, labelled with the edge type; `highlight` node ids get a thicker border."""
    drawing = drawing or layout(nodes, edges)
    width, height = max(drawing.width, NODE_WIDTH + 40), max(drawing.height, NODE_HEIGHT + 40)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" aria-label="Lineage graph" font-family="system-ui, sans-serif" font-size="12">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#607d8b"/></marker></defs>',
    ]
    if not nodes:
        parts.append(f'<text x="20" y="{height // 2}" fill="#607d8b">No lineage recorded yet.</text></svg>')
        return "".join(parts)
    ports = _ports(edges, drawing)
    taken: list[tuple[float, float, float, float]] = [
        (p.x, p.y, p.x + NODE_WIDTH, p.y + NODE_HEIGHT) for p in drawing.places.values()
    ]
    for edge in edges:
        if edge.source_id not in drawing.places or edge.target_id not in drawing.places:
            continue
        points = [ports[(edge.pk, "source")], *drawing.routes.get(edge.pk, []), ports[(edge.pk, "target")]]
        segments = []
        for (x1, y1), (x2, y2) in pairwise(points):
            middle = (y1 + y2) / 2
            segments.append(f"C {x1} {middle:.0f}, {x2} {middle:.0f}, {x2} {y2}")
        lx, ly = _label_spot(points, len(edge.edge_type), taken)
        parts.append(
            f'<g class="edge"><path d="M {points[0][0]} {points[0][1]} {" ".join(segments)}" fill="none" '
            f'stroke="#90a4ae" stroke-width="1.5" marker-end="url(#arrow)"/>'
            f'<text x="{lx:.0f}" y="{ly:.0f}" font-size="10" text-anchor="middle" fill="#546e7a" stroke="#fff" '
            f'stroke-width="3" '
            f'paint-order="stroke">{escape(edge.edge_type)}</text></g>'
        )
    for node in nodes:
        place = drawing.places[node.id]
        width_px = 3 if node.id in highlight else 1.2
        parts.append(
            f'<g class="node {escape(node.kind)}"><title>{escape(node.kind)}: {escape(node.label)}</title>'
            f'<rect x="{place.x}" y="{place.y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6" '
            f'fill="{FILL.get(node.kind, "#eceff1")}" stroke="{STROKE.get(node.kind, "#455a64")}" '
            f'stroke-width="{width_px}"/>'
            f'<text x="{place.x + 10}" y="{place.y + 18}" font-size="10" fill="#546e7a">'
            f"{escape(node.kind.replace('_', ' '))}</text>"
            f'<text x="{place.x + 10}" y="{place.y + 35}" fill="#263238">{escape(_short(node.label))}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)
