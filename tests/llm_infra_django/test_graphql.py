"""The GraphQL permission checks of `llm_infra_django.graphql`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from llm_infra_django.errors import AuthorizationError
from llm_infra_django.graphql import key_scope


class Token:
    """A token whose own rule says which scopes it holds (here: `admin` implies `read` only)."""

    scopes = ("admin",)

    def has_scope(self, scope: str) -> bool:
        return scope in ("admin", "read")


def info_for(auth: Any) -> Any:
    return SimpleNamespace(context=SimpleNamespace(auth=auth))


def test_key_scope_asks_the_token_what_its_scopes_imply() -> None:
    # given
    info = info_for(Token())

    # then
    key_scope("read")(info)
    with pytest.raises(AuthorizationError) as refused:
        key_scope("publish")(info)
    assert refused.value.code == "insufficient_scope"


def test_key_scope_takes_the_scopes_of_a_token_without_a_rule_literally() -> None:
    # given
    info = info_for(SimpleNamespace(scopes=("admin",)))

    # then
    key_scope("admin")(info)
    with pytest.raises(AuthorizationError):
        key_scope("read")(info)


def test_key_scope_lets_sessions_through() -> None:
    key_scope("admin")(info_for(None))
