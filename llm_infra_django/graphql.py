"""GraphQL (graphene) helpers: mutation payload errors from the one error model, and a mutation decorator that
requires an authenticated caller and turns domain and validation errors into payload errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import graphene

from llm_infra_django.errors import AppError, AuthenticationError


class FieldError(graphene.ObjectType):
    """A validation or domain error of a mutation."""

    field = graphene.String(description="Path of the offending input field, when one is at fault.")
    message = graphene.String(required=True)
    code = graphene.String(required=True)


def errors_of(error: AppError) -> list[FieldError]:
    """An `AppError` as mutation payload errors (one per field for validation errors)."""
    fields = (error.details or {}).get("fields") if error.details else None
    if isinstance(fields, dict) and fields:
        return [FieldError(field=name, message="; ".join(map(str, msgs)) if isinstance(msgs, list) else str(msgs),
                           code=error.code) for name, msgs in fields.items()]
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
                payload = cls(errors=errors_of(error))
                for name in ("ok",):  # a boolean outcome field reports the failure too
                    if name in cls._meta.fields:
                        setattr(payload, name, False)
                return payload

        return wrapper

    return decorate


DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class PagedConnectionField(graphene.ConnectionField):
    """A connection field whose pages are bounded: `DEFAULT_PAGE_SIZE` items when neither `first` nor `last` is
    given, never more than `MAX_PAGE_SIZE` (so query cost limits can count on these sizes)."""

    @classmethod
    def resolve_connection(cls, connection_type: Any, args: dict[str, Any], resolved: Any) -> Any:
        args = dict(args or {})
        if args.get("first") is None and args.get("last") is None:
            args["first"] = DEFAULT_PAGE_SIZE
        for name in ("first", "last"):
            if args.get(name) is not None:
                args[name] = max(0, min(int(args[name]), MAX_PAGE_SIZE))
        return super().resolve_connection(connection_type, args, resolved)


class CountedConnection(graphene.relay.Connection):
    """A Relay connection with `totalCount` (subclass it with `class Meta: node = ...`)."""

    class Meta:
        abstract = True

    total_count = graphene.Int(required=True)

    @staticmethod
    def resolve_total_count(root: Any, info: graphene.ResolveInfo) -> int:
        return len(root.iterable)
