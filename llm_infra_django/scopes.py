"""The scopes of a request's token (`request.auth`), asked the same way by every API layer (REST, GraphQL)."""

from __future__ import annotations

from typing import Any

__all__ = ["has_scope"]


def has_scope(token: Any, scope: str) -> bool:
    """Whether `token` holds `scope`: as the token's own `has_scope(scope)` decides (which scopes imply others, e.g.
    an admin scope implying every scope, is the token's rule, kept in one place), else by its `scopes` literally."""
    rule = getattr(token, "has_scope", None)
    if callable(rule):
        return bool(rule(scope))
    return scope in (getattr(token, "scopes", None) or ())
