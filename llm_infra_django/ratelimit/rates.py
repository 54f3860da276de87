"""Parse rate strings such as "100/min", "10/s", "5000/day" or "30/5m"."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

PERIODS: dict[str, int] = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
}

_RATE_RE = re.compile(r"^\s*(?P<limit>\d+)\s*/\s*(?P<count>\d+)?\s*(?P<unit>[a-z]+)\s*$", re.IGNORECASE)


class RateParseError(ValueError):
    """A rate string that does not parse."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`limit` events per `period` seconds."""

    limit: int
    period: int

    @property
    def per_second(self) -> float:
        return self.limit / self.period

    @property
    def period_us(self) -> int:
        return self.period * 1_000_000

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


def parse_rate(rate: str | Rate) -> Rate:
    """Return the `Rate` of a string like "100/min"; raise `RateParseError` naming the problem."""
    if isinstance(rate, Rate):
        return rate
    if not isinstance(rate, str):
        raise RateParseError(f"rate must be a string like '100/min', got {type(rate).__name__}")
    return _parse_string(rate)


@lru_cache(maxsize=512)
def _parse_string(rate: str) -> Rate:
    # Cached: throttles read their rate from settings on every request.
    match = _RATE_RE.match(rate)
    if not match:
        raise RateParseError(f"rate {rate!r} does not look like '<count>/<period>' (e.g. '100/min', '10/s', '30/5m')")
    unit = match["unit"].lower()
    if unit not in PERIODS:
        raise RateParseError(f"rate {rate!r} has an unknown period {unit!r}; use one of s, min, h, day")
    limit = int(match["limit"])
    period = PERIODS[unit] * int(match["count"] or 1)
    if limit < 1 or period < 1:
        raise RateParseError(f"rate {rate!r} must allow at least 1 event per period")
    return Rate(limit=limit, period=period)
