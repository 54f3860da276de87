"""Query limits checked before execution: depth and cost (fields weighted by the page sizes of lists above them),
with fragments expanded and aliases counted, so neither can be used to get around them. Introspection counts toward
the cost only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from apps.gateway.conf import gateway_settings
from llm_infra_django.graphql import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE

# Schema introspection nests `ofType` deeply (GraphiQL's query is 15 levels): it counts toward the cost limit, which
# bounds it, but not toward the depth limit (introspection is switched off in production anyway).
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class Measure:
    depth: int
    cost: int


def _page_size(node: FieldNode, variables: dict[str, Any], list_like: bool) -> int:
    """Items a connection field can return: its `first`/`last` (at most the maximum page), else the default page."""
    if not list_like:
        return 1
    for argument in node.arguments:
        if argument.name.value in ("first", "last"):
            value = argument.value
            raw = variables.get(value.name.value) if isinstance(value, VariableNode) else getattr(value, "value", None)
            try:
                return max(0, min(int(raw), MAX_PAGE_SIZE))
            except (TypeError, ValueError):
                break
    return DEFAULT_PAGE_SIZE


def _is_list_like(field_type: Any) -> bool:
    """Connections multiply what is below them by their page size (plain lists such as `edges` do not: their
    connection already did)."""
    return get_named_type(field_type).name.endswith("Connection")


def measure(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None
) -> Measure:
    """Depth and cost of the operation that will run."""
    variables = variables or {}
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next((o for o in operations if o.name and o.name.value == operation_name), None) or (
        operations[0] if operations else None
    )
    if operation is None:
        return Measure(0, 0)
    root = {"query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type}[
        operation.operation.value
    ]

    def walk(
        selection_set: SelectionSetNode | None, parent: Any, multiplier: int, depth: int, seen: frozenset[str]
    ) -> Measure:
        if selection_set is None:
            return Measure(depth, 0)
        deepest, cost = depth, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                field = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
                field_type = field.type if field is not None else None
                size = _page_size(selection, variables, field_type is not None and _is_list_like(field_type))
                child = walk(
                    selection.selection_set,
                    get_named_type(field_type) if field_type else None,
                    multiplier * size if selection.selection_set else multiplier,
                    depth + 1,
                    seen,
                )
                cost += multiplier + child.cost
                if not (name in INTROSPECTION_ROOTS and parent is root):
                    deepest = max(deepest, child.depth)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = schema.get_type(selection.type_condition.name.value) or parent
                inner = walk(selection.selection_set, target, multiplier, depth, seen)
                cost, deepest = cost + inner.cost, max(deepest, inner.depth)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or name in seen:  # unknown or cyclic: validation reports it
                    continue
                target = schema.get_type(fragment.type_condition.name.value) or parent
                inner = walk(fragment.selection_set, target, multiplier, depth, seen | {name})
                cost, deepest = cost + inner.cost, max(deepest, inner.depth)
        return Measure(deepest, cost)

    return walk(operation.selection_set, root, 1, 0, frozenset())


def violations(result: Measure) -> list[str]:
    """Messages naming each limit the operation passes, with the computed value."""
    found = []
    if result.depth > gateway_settings.MAX_DEPTH:
        found.append(f"Query depth {result.depth} exceeds the limit of {gateway_settings.MAX_DEPTH}.")
    if result.cost > gateway_settings.MAX_COST:
        found.append(f"Query cost {result.cost} exceeds the limit of {gateway_settings.MAX_COST}.")
    return found
