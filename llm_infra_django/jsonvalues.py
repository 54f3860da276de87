"""Free JSON input checked for what PostgreSQL cannot store, before it reaches the database (where it is a 500)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["NON_FINITE_MESSAGE", "NUL", "NUL_MESSAGE", "unstorable"]

NUL = "\x00"
NUL_MESSAGE = "NUL characters are not allowed."
NON_FINITE_MESSAGE = "Numbers must be finite (a number as large as 1e400 reads as infinity)."


def unstorable(value: Any, path: str) -> dict[str, str]:
    """Where `value` (parsed JSON) holds what PostgreSQL cannot store, as path → message, sorted by path: a string
    holding a NUL character (an object whose key holds one is named itself), and a number that is not finite (JSON's
    `1e400` parses as infinity; lenient parsers also read `NaN` and `Infinity`)."""
    found: dict[str, str] = {}
    pending: list[tuple[str, Any]] = [(path, value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            if NUL in item:
                found[where] = NUL_MESSAGE
        elif isinstance(item, float):
            if not math.isfinite(item):
                found[where] = NON_FINITE_MESSAGE
        elif isinstance(item, Mapping):
            if any(NUL in str(key) for key in item):
                found[where] = NUL_MESSAGE
            pending.extend((f"{where}.{key}", child) for key, child in item.items() if NUL not in str(key))
        elif isinstance(item, (list, tuple)):
            pending.extend((f"{where}[{index}]", child) for index, child in enumerate(item))
    return dict(sorted(found.items()))
