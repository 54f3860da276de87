"""GraphQL (graphene) helpers shared by every app's `graphql` module: mutation payload errors from the one error
model, permissions declared once per resolver (`requires`), bounded and counted Relay connections, batching of nested
lists without N+1 (`announce`/`load_related`), Relay node ids and input validation by the REST serializers."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal as PyDecimal
from typing import Any

import graphene
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import QuerySet
from graphene.relay.connection import connection_adapter, page_info_adapter
from graphene_django.converter import convert_django_field, get_django_field_description
from graphql import GraphQLResolveInfo
from graphql_relay import connection_from_array_slice, from_global_id

from llm_infra_django.errors import AppError, AuthenticationError, AuthorizationError, NotFoundError
from llm_infra_django.scopes import has_scope


class Decimal(graphene.Decimal):
    """graphene's `Decimal`, written as the REST API writes decimals: no trailing zeros, no exponent (`"0.5"`,
    `"250000"`, `"-1"`). Model `DecimalField`s of `DjangoObjectType`s map to it too (registered below)."""

    class Meta:
        name = "Decimal"
        description = 'A decimal number as a string, without trailing zeros or exponent ("0.5", "250000", "-1").'

    @staticmethod
    def serialize(dec: Any) -> str:
        value = dec if isinstance(dec, PyDecimal) else PyDecimal(str(dec))
        return format(value.normalize(), "f") if value.is_finite() else str(value)


@convert_django_field.register(models.DecimalField)
def _convert_decimal_field(field: models.DecimalField, registry: Any = None) -> Decimal:
    return Decimal(description=get_django_field_description(field), required=not field.null)


class FieldError(graphene.ObjectType):
    """A validation or domain error of a mutation."""

    field = graphene.String(description="Path of the offending input field, when one is at fault.")
    message = graphene.String(required=True)
    code = graphene.String(required=True)


def errors_of(error: AppError) -> list[FieldError]:
    """An `AppError` as mutation payload errors (one per field for validation errors)."""
    fields = (error.details or {}).get("fields") if error.details else None
    if isinstance(fields, dict) and fields:
        return [
            FieldError(
                field=name, message="; ".join(map(str, msgs)) if isinstance(msgs, list) else str(msgs), code=error.code
            )
            for name, msgs in fields.items()
        ]
    return [FieldError(field=(error.details or {}).get("field"), message=error.message, code=error.code)]


def authenticated(info: graphene.ResolveInfo) -> Any:
    """The caller (user or API key), or a 401 GraphQL error."""
    request = info.context
    if getattr(request, "auth", None) is None and not getattr(request.user, "is_authenticated", False):
        raise AuthenticationError("Authenticate with a session or an API key.")
    return request


def mutation(payload_errors: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate `mutate`: the caller must be authenticated; domain and validation errors become payload errors."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(cls: Any, root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
            authenticated(info)
            try:
                return function(cls, root, info, **kwargs)
            except AppError as error:
                if not payload_errors or error.status_code in (401,):
                    raise
                payload_type = getattr(cls._meta, "output", None) or cls
                payload = payload_type(errors=errors_of(error))
                for name in ("ok",):  # a boolean outcome field reports the failure too
                    if name in payload_type._meta.fields:
                        setattr(payload, name, False)
                return payload

        return wrapper

    return decorate


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PagedConnectionField(graphene.ConnectionField):
    """A connection field whose pages are bounded: `DEFAULT_PAGE_SIZE` items when neither `first` nor `last` is
    given, never more than `MAX_PAGE_SIZE` (so query cost limits can count on these sizes).

    A resolver may return a list or a QuerySet; a QuerySet is counted with one `COUNT` and only the page is fetched.
    The model instances of the page are announced to `load_related`, so their own nested lists load in one query
    for the whole page."""

    @classmethod
    def resolve_connection(cls, connection_type: Any, args: dict[str, Any], resolved: Any) -> Any:
        args = dict(args or {})
        if args.get("first") is None and args.get("last") is None:
            args["first"] = DEFAULT_PAGE_SIZE
        for name in ("first", "last"):
            if args.get(name) is not None:
                args[name] = max(0, min(int(args[name]), MAX_PAGE_SIZE))
        if isinstance(resolved, connection_type):
            return resolved
        if isinstance(resolved, QuerySet):
            return _queryset_connection(connection_type, args, resolved)
        return super().resolve_connection(connection_type, args, resolved)

    @classmethod
    def connection_resolver(
        cls, resolver: Any, connection_type: Any, root: Any, info: graphene.ResolveInfo, **args: Any
    ) -> Any:
        connection = super().connection_resolver(resolver, connection_type, root, info, **args)
        if isinstance(connection, graphene.relay.Connection):
            announce(info, [edge.node for edge in connection.edges])
        return connection


def _queryset_connection(connection_type: Any, args: dict[str, Any], queryset: QuerySet[Any]) -> Any:
    """A page of a QuerySet: `COUNT` once, then fetch only the rows of the page."""
    count = queryset.count()
    connection = connection_from_array_slice(
        _CountedSlice(queryset, count),
        args,
        slice_start=0,
        array_length=count,
        array_slice_length=count,
        connection_type=functools.partial(connection_adapter, connection_type),
        edge_type=connection_type.Edge,
        page_info_type=page_info_adapter,
    )
    connection.iterable = queryset  # type: ignore[attr-defined]
    connection._total = count  # type: ignore[attr-defined]
    return connection


class _CountedSlice:
    """A QuerySet whose length is known (graphql-relay slices it; slicing a QuerySet runs LIMIT/OFFSET)."""

    def __init__(self, queryset: QuerySet[Any], count: int) -> None:
        self.queryset, self.count = queryset, count

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, item: Any) -> Any:
        return list(self.queryset[item])

    def __iter__(self) -> Iterator[Any]:
        return iter(self.queryset)


class CountedConnection(graphene.relay.Connection):
    """A Relay connection with `totalCount` (subclass it with `class Meta: node = ...`)."""

    class Meta:
        abstract = True

    total_count = graphene.Int(required=True)

    @staticmethod
    def resolve_total_count(root: Any, info: graphene.ResolveInfo) -> int:
        total = getattr(root, "_total", None)
        if total is not None:
            return int(total)
        iterable = root.iterable
        return iterable.count() if isinstance(iterable, QuerySet) else len(iterable)


# --- Batching nested lists without N+1 ----------------------------------------------------------------------
#
# graphql-core executes synchronously depth first: a node's whole subtree resolves before its sibling's, so a
# DataLoader could not wait for the siblings. Instead, whoever resolves a page *announces* its model instances
# (PagedConnectionField does it for every connection); the first nested field of one of them that misses
# loads its relation for every announced sibling at once, and announces what it loaded in turn. A nested query
# then runs one query per relation, however many nodes each page has.


def _batches(info: graphene.ResolveInfo) -> dict[str, Any]:
    context = info.context
    batches = getattr(context, "_gql_batches", None)
    if batches is None:
        batches = {"seen": {}, "loaded": {}}
        context._gql_batches = batches
    return batches


def announce(info: graphene.ResolveInfo, objects: Iterable[Any]) -> None:
    """Make model instances known to `load_related` as siblings to load with."""
    seen = _batches(info)["seen"]
    for obj in objects:
        meta = getattr(obj, "_meta", None)
        if meta is not None and getattr(obj, "pk", None) is not None:
            seen.setdefault(meta.label, {}).setdefault(obj.pk, obj)


def load_related(
    info: graphene.ResolveInfo,
    obj: Any,
    name: str,
    loader: Callable[[list[Any]], Mapping[Any, Any]],
    default: Any = None,
) -> Any:
    """The value of relation `name` of `obj`, loaded for `obj` and every announced sibling of its model at once.

    `loader(instances)` returns `{instance.pk: value}` (missing ones get `default`). Values that are model
    instances, or lists of them, are announced in turn so their own relations batch too. Use a distinct `name` per
    relation and per variant (filters, scope) of it."""
    batches = _batches(info)
    label = obj._meta.label
    cache = batches["loaded"].setdefault(f"{label}.{name}", {})
    if obj.pk not in cache:
        siblings = batches["seen"].get(label, {})
        pending = [sibling for pk, sibling in siblings.items() if pk not in cache]
        if obj.pk not in siblings:
            pending.append(obj)
        loaded = loader(pending)
        for instance in pending:
            value = loaded.get(instance.pk, default() if callable(default) else default)
            cache[instance.pk] = value
            announce(info, value if isinstance(value, (list, tuple)) else [value])
    return cache[obj.pk]


def related_lists(queryset: QuerySet[Any], key: str) -> Callable[[list[Any]], dict[Any, list[Any]]]:
    """A `load_related` loader: the rows of `queryset` whose `key` (a foreign key's attname) is one of the
    instances, grouped by it (in the queryset's order)."""

    def load(instances: list[Any]) -> dict[Any, list[Any]]:
        grouped: dict[Any, list[Any]] = {}
        for row in queryset.filter(**{f"{key}__in": [instance.pk for instance in instances]}):
            grouped.setdefault(getattr(row, key), []).append(row)
        return grouped

    return load


def node_field(description: str = "The object a Relay global id names, if you may see it.") -> graphene.Field:
    """Relay's `node(id:)`, answering null for an id that is malformed, names another type or an object the caller
    may not see (graphene would answer an internal error for the first two, or for a key that is not a UUID)."""

    def resolve(root: Any, info: graphene.ResolveInfo, id: str) -> Any:
        try:
            kind, raw = from_global_id(id)
        except Exception:
            return None
        found = info.schema.get_type(kind) if kind else None
        graphene_type = getattr(found, "graphene_type", None)
        if graphene_type is None or graphene.relay.Node not in getattr(graphene_type._meta, "interfaces", ()):
            return None
        try:
            return graphene_type.get_node(info, raw)
        except (ValueError, TypeError, DjangoValidationError):  # a key of the wrong shape for the type
            return None

    return graphene.Field(graphene.relay.Node, id=graphene.ID(required=True), resolver=resolve, description=description)


def extend_type(graphene_type: Any, **fields: graphene.Field) -> None:
    """Add fields to a type defined elsewhere, before the schema is built: how a layer above two sibling apps links
    their types (an app may not import its sibling). Adding a field a type already has is an error."""
    for name, field in fields.items():
        existing = graphene_type._meta.fields.get(name)
        if existing is not None and existing is not field:
            raise ValueError(f"{graphene_type.__name__} already has a field {name!r}.")
        graphene_type._meta.fields[name] = field


# --- Node ids, input validation, permissions ----------------------------------------------------------------


def node_pk(node_id: Any, type_name: str | None = None, what: str = "Object") -> uuid.UUID:
    """The primary key a Relay global id (or a bare UUID) names; a 404 for anything else, including a global id
    of another type."""
    text = str(node_id or "")
    try:
        return uuid.UUID(text)
    except ValueError:
        pass
    try:
        kind, raw = from_global_id(text)
        if type_name is not None and kind != type_name:
            raise ValueError(kind)
        return uuid.UUID(raw)
    except Exception:
        raise NotFoundError(what, text) from None


Check = Callable[[graphene.ResolveInfo], None]


def key_scope(scope: str) -> Check:
    """A check: a request authenticated by a token (`request.auth`) needs `scope`, as `scopes.has_scope` decides;
    sessions pass (tenant roles decide for them, in the services and selectors)."""

    def check(info: graphene.ResolveInfo) -> None:
        auth = getattr(info.context, "auth", None)
        if auth is None:
            return
        if not has_scope(auth, scope):
            raise AuthorizationError(f"This API key lacks the '{scope}' scope.", code="insufficient_scope")

    check.__doc__ = f"scope {scope}"
    return check


def session_only(info: graphene.ResolveInfo) -> None:
    """A check: only a signed-in user (not an API key) may do this."""
    if getattr(info.context, "auth", None) is not None:
        raise AuthorizationError("API keys cannot do this; sign in.", code="session_required")


def requires(*checks: Check) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a resolver's permissions once: the caller must be authenticated and pass every check. On a query
    resolver a refusal is a GraphQL error on that field; on a `mutate` decorated with `mutation()` (put `requires`
    below it) it is a payload error."""

    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            info = next(arg for arg in args if isinstance(arg, GraphQLResolveInfo))
            authenticated(info)
            for check in checks:
                check(info)
            return function(*args, **kwargs)

        wrapper.checks = checks  # type: ignore[attr-defined]
        return wrapper

    return decorate
