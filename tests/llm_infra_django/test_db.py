"""`database_sync_to_async`: connections are recycled before each call, as Django does at each request."""

from __future__ import annotations

from asgiref.sync import async_to_sync

from llm_infra_django import db


def test_broken_or_old_connections_are_closed_before_the_call(monkeypatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(db, "close_old_connections", lambda: calls.append("recycle"))

    def read(value: int) -> int:
        calls.append("read")
        return value * 2

    assert async_to_sync(db.database_sync_to_async(read))(21) == 42
    assert calls == ["recycle", "read"]


def test_the_wrapper_keeps_the_function_s_identity() -> None:
    def read() -> None:
        """Reads."""

    wrapped = db.with_fresh_connections(read)
    assert wrapped.__name__ == "read" and wrapped.__doc__ == "Reads."
