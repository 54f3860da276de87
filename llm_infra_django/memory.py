"""What one process keeps in place of Redis: a locked state, keyed values that expire, and one way to clear them all."""

from __future__ import annotations

import threading
import weakref
from typing import Generic, TypeVar

V = TypeVar("V")

_states: weakref.WeakSet[LocalState] = weakref.WeakSet()
_states_lock = threading.Lock()  # a state may be created on another thread while clear_all() lists them


class LocalState:
    """The base of a per-process stand-in for Redis. Hold `lock` for each whole operation (as a Lua script is atomic);
    `clear()` forgets everything, as a restarted process would. Every instance is reachable by `clear_all()`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        with _states_lock:
            _states.add(self)

    def clear(self) -> None:
        with self.lock:
            self._clear()

    def _clear(self) -> None:
        """Forget everything (the lock is held)."""
        raise NotImplementedError


class LocalStore(LocalState, Generic[V]):
    """Keyed values with an expiry each, as Redis keys with a TTL; times are on whatever clock the owner passes as
    `now` (an expiry is due when it is not after `now`). The methods expect `lock` to be held by the caller."""

    def __init__(self) -> None:
        super().__init__()
        self._entries: dict[str, tuple[V, float]] = {}

    def value(self, key: str, now: float) -> V | None:
        """The value of `key` at `now`; None when it is missing or expired."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, key: str, value: V, expires_at: float | None = None) -> None:
        """Set `key`; without `expires_at` it keeps the expiry it has (as Redis' `KEEPTTL`)."""
        self._entries[key] = (value, self._entries[key][1] if expires_at is None else expires_at)

    def sweep(self, now: float) -> None:
        """Drop the expired keys (Redis drops them by itself)."""
        for key in [key for key, (_, expires_at) in self._entries.items() if expires_at <= now]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def _clear(self) -> None:
        self._entries.clear()


def clear_all() -> None:
    """Clear every live `LocalState` of this process (for tests: each starts as if in a fresh process)."""
    with _states_lock:
        states = list(_states)
    for state in states:
        state.clear()
