"""Background work on the running event loop that outlives the request that started it."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from typing import Any

_running: set[asyncio.Task[Any]] = set()


def spawn(coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
    """Run `coroutine` as a task of the running loop, in a fresh context (so it is not tied to the request's context
    — asgiref's thread executors, bound logging variables — that it outlives), and keep a reference to it until it
    ends (the loop keeps only weak ones)."""
    task = asyncio.get_running_loop().create_task(coroutine, context=contextvars.Context())
    _running.add(task)
    task.add_done_callback(_running.discard)
    return task
