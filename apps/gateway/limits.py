"""Query limits checked before validation and execution: depth and cost (fields weighted by the page sizes of lists
above them), with fragments expanded and aliases counted, so neither can be used to get around them, and the number
of selections written. Introspection counts toward the cost only."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionNode,
    SelectionSetNode,
    ValueNode,
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
    selections: int = 0


def _page_size(node: FieldNode, variables: dict[str, Any], defaults: Mapping[str, ValueNode], list_like: bool) -> int:
    """Items a connection field can return: its `first`/`last` as it will run (a variable's value, else its default;
    at most the maximum page), else the default page. A page of 0 still counts once: its selection is validated."""
    if not list_like:
        return 1
    for argument in node.arguments:
        if argument.name.value in ("first", "last"):
            value = argument.value
            if isinstance(value, VariableNode):
                name = value.name.value
                raw: Any = variables[name] if name in variables else getattr(defaults.get(name), "value", None)
            else:
                raw = getattr(value, "value", None)
            try:
                return max(1, min(int(raw), MAX_PAGE_SIZE))
            except (TypeError, ValueError, OverflowError):
                break
    return DEFAULT_PAGE_SIZE


def _is_list_like(field_type: Any) -> bool:
    """Connections multiply what is below them by their page size (plain lists such as `edges` do not: their
    connection already did)."""
    return get_named_type(field_type).name.endswith("Connection")


def _written(*selection_sets: SelectionSetNode) -> Iterator[SelectionNode]:
    """Every selection written in `selection_sets`, nested ones included (fragments are not expanded)."""
    pending = list(selection_sets)
    while pending:
        for selection in pending.pop().selections:
            yield selection
            if isinstance(selection, (FieldNode, InlineFragmentNode)) and selection.selection_set is not None:
                pending.append(selection.selection_set)


def _spread_names(selection_set: SelectionSetNode) -> list[str]:
    """Fragments spread anywhere in `selection_set`."""
    return [s.name.value for s in _written(selection_set) if isinstance(s, FragmentSpreadNode)]


def _dependency_order(fragments: dict[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after the fragments it spreads; a spread closing a cycle is left out (validation refuses
    cycles). Without recursion, so that a long chain of fragments cannot exhaust the stack."""
    spreads = {name: iter(_spread_names(fragment.selection_set)) for name, fragment in fragments.items()}
    order: list[str] = []
    placed: set[str] = set()
    for root in fragments:
        path, on_path = ([], set()) if root in placed else ([root], {root})
        while path:
            pending = (s for s in spreads[path[-1]] if s in fragments and s not in placed and s not in on_path)
            following = next(pending, None)
            if following is None:
                on_path.discard(path[-1])
                placed.add(path[-1])
                order.append(path.pop())
            else:
                path.append(following)
                on_path.add(following)
    return order


def measure(
    schema: GraphQLSchema, document: DocumentNode, variables: dict[str, Any] | None, operation_name: str | None
) -> Measure:
    """Depth and cost of the operation that will run, in time linear in the document: a selection's cost is its cost
    for one item times the items above it, so each fragment is measured once (for one item), however often it is
    spread, and fragments spreading the previous one twice (2**n fields once expanded) take n steps. With the
    selections written in the whole document, which validation compares pairwise (overlapping fields)."""
    selections = sum(
        1 for _ in _written(*(d.selection_set for d in document.definitions if isinstance(d, ExecutableDefinitionNode)))
    )
    variables = variables if isinstance(variables, dict) else {}
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    operation = next((o for o in operations if o.name and o.name.value == operation_name), None) or (
        operations[0] if operations else None
    )
    if operation is None:
        return Measure(0, 0, selections)
    root = {"query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type}[
        operation.operation.value
    ]
    defaults = {
        d.variable.name.value: d.default_value for d in operation.variable_definitions if d.default_value is not None
    }
    measured: dict[str, Measure] = {}  # each fragment's depth and cost for one item

    def walk(selection_set: SelectionSetNode | None, parent: Any) -> Measure:
        """Depth below `selection_set` and its cost for one item."""
        if selection_set is None:
            return Measure(0, 0)
        deepest, cost = 0, 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                field = parent.fields.get(name) if isinstance(parent, GraphQLObjectType) else None
                field_type = field.type if field is not None else None
                size = _page_size(selection, variables, defaults, field_type is not None and _is_list_like(field_type))
                child = walk(selection.selection_set, get_named_type(field_type) if field_type else None)
                cost += 1 + size * child.cost
                if not (name in INTROSPECTION_ROOTS and parent is root):
                    deepest = max(deepest, 1 + child.depth)
            elif isinstance(selection, InlineFragmentNode):
                target = parent
                if selection.type_condition is not None:
                    target = schema.get_type(selection.type_condition.name.value) or parent
                inner = walk(selection.selection_set, target)
                cost, deepest = cost + inner.cost, max(deepest, inner.depth)
            elif isinstance(selection, FragmentSpreadNode):
                # an unknown fragment, or one closing a cycle, counts nothing: validation refuses the document
                inner = measured.get(selection.name.value, Measure(0, 0))
                cost, deepest = cost + inner.cost, max(deepest, inner.depth)
        return Measure(deepest, cost)

    for name in _dependency_order(fragments):
        fragment = fragments[name]
        measured[name] = walk(fragment.selection_set, schema.get_type(fragment.type_condition.name.value))
    result = walk(operation.selection_set, root)
    return Measure(result.depth, result.cost, selections)


def violations(result: Measure) -> list[str]:
    """Messages naming each limit the operation passes, with the computed value."""
    found = []
    if result.depth > gateway_settings.MAX_DEPTH:
        found.append(f"Query depth {result.depth} exceeds the limit of {gateway_settings.MAX_DEPTH}.")
    if result.cost > gateway_settings.MAX_COST:
        found.append(f"Query cost {result.cost} exceeds the limit of {gateway_settings.MAX_COST}.")
    if result.selections > gateway_settings.MAX_SELECTIONS:
        found.append(
            f"Query size {result.selections} selections exceeds the limit of {gateway_settings.MAX_SELECTIONS}."
        )
    return found
