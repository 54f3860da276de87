"""A token's scopes: its own rule decides which scopes imply others; a token without one is taken literally."""

from __future__ import annotations

from types import SimpleNamespace

from llm_infra_django.scopes import has_scope


class Token:
    """A token whose own rule says which scopes it holds (here: `admin` implies every scope)."""

    scopes = ("admin",)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes or "admin" in self.scopes


def test_a_token_with_a_rule_is_asked() -> None:
    assert has_scope(Token(), "admin")
    assert has_scope(Token(), "publish")


def test_a_token_without_a_rule_holds_exactly_its_scopes() -> None:
    # given
    token = SimpleNamespace(scopes=("admin",))

    # then
    assert has_scope(token, "admin")
    assert not has_scope(token, "publish")
    assert not has_scope(SimpleNamespace(scopes=None), "read")
    assert not has_scope(object(), "read")
