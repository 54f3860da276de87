"""Nested connections of a whole page of parents in one query: the first rows of every parent's list (a window
function numbers them per parent) with each list's total, loaded through `load_related` at the first miss."""

from __future__ import annotations

import functools
from typing import Any

import graphene
from django.db.models import Count, F, QuerySet, Window
from django.db.models.functions import RowNumber
from graphene.relay.connection import connection_adapter, page_info_adapter
from graphql_relay import connection_from_array_slice, get_offset_with_default

from llm_infra_django.graphql import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, load_related


class Head(list[Any]):
    """The first rows of one parent's list, and how many rows the list has in all (`total`)."""

    total: int = 0


def head_rows(queryset: QuerySet[Any], key: str, limit: int | None) -> Any:
    """A `load_related` loader: for each instance, the first `limit` rows (all when None) of `queryset` whose `key`
    (a foreign key's attname) is its pk, in the queryset's order, with their total — one query for all of them."""
    order = (*(queryset.query.order_by or queryset.model._meta.ordering), "pk")

    def load(instances: list[Any]) -> dict[Any, Head]:
        rows = queryset.filter(**{f"{key}__in": [instance.pk for instance in instances]}).annotate(
            list_position=Window(RowNumber(), partition_by=[F(key)], order_by=order),
            list_total=Window(Count("pk"), partition_by=[F(key)]),
        )
        if limit is not None:
            rows = rows.filter(list_position__lte=limit)
        grouped: dict[Any, Head] = {}
        for row in rows.order_by(key, "list_position"):
            head = grouped.setdefault(getattr(row, key), Head())
            head.append(row)
            head.total = row.list_total
        return grouped

    return load


def nested_connection(
    info: graphene.ResolveInfo,
    parent: Any,
    name: str,
    queryset: QuerySet[Any],
    key: str,
    connection_type: Any,
    args: dict[str, Any],
) -> Any:
    """The page `args` asks of `parent`'s list (rows of `queryset` whose `key` is the parent's pk), loaded with the
    lists of every announced sibling of the parent: a nested connection costs one query per page of parents.
    Page sizes are bounded as `PagedConnectionField` bounds them; `last` loads whole lists."""
    args = dict(args)
    if args.get("first") is None and args.get("last") is None:
        args["first"] = DEFAULT_PAGE_SIZE
    for size in ("first", "last"):
        if args.get(size) is not None:
            args[size] = max(0, min(int(args[size]), MAX_PAGE_SIZE))
    limit = None
    if args.get("last") is None:
        limit = get_offset_with_default(args.get("after"), -1) + 1 + args["first"]
    rows = load_related(info, parent, f"{name}:{limit}", head_rows(queryset, key, limit), default=Head)
    connection = connection_from_array_slice(
        rows,
        args,
        slice_start=0,
        array_length=rows.total,
        array_slice_length=len(rows),
        connection_type=functools.partial(connection_adapter, connection_type),
        edge_type=connection_type.Edge,
        page_info_type=page_info_adapter,
    )
    connection.iterable = rows  # type: ignore[attr-defined]
    connection._total = rows.total  # type: ignore[attr-defined]
    return connection
