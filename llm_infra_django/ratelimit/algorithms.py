"""Pure-Python token bucket and sliding-window-log cores on integer microseconds, mirrored step by step in Lua."""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple, Protocol

TOKEN_BUCKET = "token_bucket"
SLIDING_WINDOW = "sliding_window"
ALGORITHMS = (TOKEN_BUCKET, SLIDING_WINDOW)

# Idle state is dropped this long after it became equal to a fresh one (Redis key TTL, in-process sweep); the margin
# keeps an early expiry from ever changing a decision.
EXPIRY_MARGIN_MS = 1000


class Verdict(NamedTuple):
    """One decision in the units both implementations share (the Lua scripts return exactly these five integers)."""

    allowed: bool
    remaining: int
    reset_after_us: int  # until the limiter is back to its full limit
    retry_after_us: int  # until this request would be admitted; 0 when allowed
    now_us: int  # the clock reading the decision used


class LimiterState(Protocol):
    """The state of one limited key: `hit` decides and, only when it admits, consumes."""

    def hit(self, limit: int, period_us: int, cost: int, now_us: int) -> Verdict: ...


def ttl_ms(reset_after_us: int) -> int:
    """How long an admitted write keeps its state (the Redis `PEXPIRE`)."""
    return math.ceil(reset_after_us / 1000) + EXPIRY_MARGIN_MS


class TokenBucket:
    """Capacity `limit`, refilled continuously at `limit / period_us` tokens per microsecond, starting full.

    A hit of `cost` tokens is admitted when that many are available; a denial changes nothing and says when enough
    will have refilled: `ceil((cost - tokens) / rate)`. A cost above the capacity never fits (retry after a period).
    """

    __slots__ = ("tokens", "updated_us")

    def __init__(self) -> None:
        self.tokens: float | None = None
        self.updated_us = 0

    def hit(self, limit: int, period_us: int, cost: int, now_us: int) -> Verdict:
        tokens = float(limit)
        if self.tokens is not None:
            now_us = max(now_us, self.updated_us)  # a clock stepping back refills nothing
            tokens = self._refilled(limit, period_us, now_us - self.updated_us)
        if cost <= tokens:
            tokens -= cost
            self.tokens, self.updated_us = tokens, now_us
            return Verdict(True, math.floor(tokens), math.ceil((limit - tokens) * period_us / limit), 0, now_us)
        reset = math.ceil((limit - tokens) * period_us / limit)
        if cost > limit:
            return Verdict(False, math.floor(tokens), reset, period_us, now_us)
        retry = math.ceil((cost - tokens) * period_us / limit)
        # Float rounding may leave the bucket a hair short after `retry`; the promise is that it then admits.
        if self._refilled(limit, period_us, now_us - self.updated_us + retry) < cost:
            retry += 1
        return Verdict(False, math.floor(tokens), reset, retry, now_us)

    def _refilled(self, limit: int, period_us: int, elapsed_us: int) -> float:
        """Tokens after `elapsed_us` since the last admitted hit (only called once there was one)."""
        if elapsed_us >= period_us or self.tokens is None:
            return float(limit)
        # float() first: the same IEEE operations, in the same order, as the Lua script.
        return min(float(limit), self.tokens + float(elapsed_us) * limit / period_us)


class SlidingWindowLog:
    """Exact sliding window: the admitted costs of the last `period_us` never exceed `limit`.

    Each admitted hit is logged with its time; a hit at `t` counts until `t + period_us`. Denied hits are not logged,
    so they never use up the window. A denial waits for the oldest entries whose expiry frees enough room.
    """

    __slots__ = ("entries", "last_us", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[int, int]] = deque()  # (admitted at µs, cost), oldest first
        self.total = 0
        self.last_us = 0

    def hit(self, limit: int, period_us: int, cost: int, now_us: int) -> Verdict:
        now_us = max(now_us, self.last_us)
        cutoff = now_us - period_us
        while self.entries and self.entries[0][0] <= cutoff:
            self.total -= self.entries.popleft()[1]
        allowed = self.total + cost <= limit
        retry = 0
        if allowed:
            self.entries.append((now_us, cost))
            self.total += cost
            self.last_us = now_us
        elif cost > limit:
            retry = period_us
        else:
            retry = self._retry_after(self.total + cost - limit, period_us, now_us)
        reset = self.last_us + period_us - now_us if self.total > 0 else 0
        return Verdict(allowed, max(0, limit - self.total), reset, retry, now_us)

    def _retry_after(self, need: int, period_us: int, now_us: int) -> int:
        # The entries hold `total` >= `need`, so the walk always stops on the entry whose expiry frees enough.
        freed = 0
        for admitted_us, cost in self.entries:  # noqa: B007 - the entry the loop stops on is the answer
            freed += cost
            if freed >= need:
                break
        return admitted_us + period_us - now_us
