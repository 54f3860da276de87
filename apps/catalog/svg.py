"""Server-rendered SVG picture of a lineage subgraph (no script, no external resource)."""

from __future__ import annotations

from collections.abc import Collection, Sequence

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
    for edge in edges:
        source, target = drawing.places.get(edge.source_id), drawing.places.get(edge.target_id)
        if source is None or target is None:
            continue
        # From the derived node's edge nearest to its origin, to the origin's nearest edge.
        x1, x2 = source.x + NODE_WIDTH // 2, target.x + NODE_WIDTH // 2
        if source.y > target.y:
            y1, y2 = source.y, target.y + NODE_HEIGHT
        elif source.y < target.y:
            y1, y2 = source.y + NODE_HEIGHT, target.y
        else:
            y1 = y2 = source.y + NODE_HEIGHT // 2
            x1, x2 = (source.x, target.x + NODE_WIDTH) if source.x > target.x else (source.x + NODE_WIDTH, target.x)
        parts.append(
            f'<g class="edge"><line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#90a4ae" stroke-width="1.5" '
            f'marker-end="url(#arrow)"/><text x="{(x1 + x2) // 2 + 4}" y="{(y1 + y2) // 2}" font-size="10" '
            f'fill="#546e7a">{escape(edge.edge_type)}</text></g>'
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
