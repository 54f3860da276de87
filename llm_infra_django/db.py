"""Database access from async code that Django's request signals do not wrap (a lean ASGI handler, background
tasks): connections are recycled the way `request_started` would, so a database restart is survived."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def with_fresh_connections(function: Callable[P, R]) -> Callable[P, R]:
    """Run `function` after closing this thread's connections that broke (e.g. the server restarted) or outlived
    `CONN_MAX_AGE`, as Django does at the start of each request."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        return function(*args, **kwargs)

    return run


def database_sync_to_async(
    function: Callable[P, R], *, thread_sensitive: bool = True
) -> Callable[P, Coroutine[Any, Any, R]]:
    """`sync_to_async(function)` for code reading the database outside Django's request cycle: without it a
    connection that broke stays broken for the life of the thread."""
    return sync_to_async(with_fresh_connections(function), thread_sensitive=thread_sensitive)
