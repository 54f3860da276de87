"""What routing knows of an offer's health: its circuit breaker's state and its recent SLA figures (availability,
error rate, latency, throughput) from the periodic SLA check's cache. `offer_health` reads them (a Redis call per
breaker, one cache read for the figures); `health_cache` keeps them in the worker's memory and refreshes them in the
background, so choosing an offer reads no SQL and waits for no network."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from apps.consumption.conf import consumption_settings
from apps.consumption.sla import get_sla_statuses
from llm_infra_django.background import spawn
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.resilience.breaker import breaker


@dataclass(frozen=True)
class Health:
    """One offer's (service version's) health as routing sees it."""

    version_id: str
    # whether the offer gets first-choice traffic: its breaker is not open and its recent availability (when it has
    # traffic) is at least `ROUTING_MIN_AVAILABILITY` (see `is_healthy`)
    healthy: bool = True
    breaker: str = "closed"  # closed, half_open, open
    requests: int = 0
    availability: float | None = None  # % of recent requests without a server error
    error_rate: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    throughput_tps: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "breaker": self.breaker,
            "requests": self.requests,
            "availability": self.availability,
            "error_rate": self.error_rate,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "throughput_tps": self.throughput_tps,
        }


def is_healthy(breaker: str, requests: int, availability: float | None) -> bool:
    if breaker == "open":
        return False
    minimum = float(consumption_settings.ROUTING_MIN_AVAILABILITY)
    return availability is None or not requests or availability >= minimum


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def offer_health(version_ids: Iterable[str]) -> dict[str, Health]:
    """The health of each service version (synchronous: a breaker read per version, one cache read for all)."""
    ids = [str(v) for v in version_ids]
    statuses = get_sla_statuses(ids)
    found = {}
    for version_id in ids:
        sla = statuses.get(version_id) or {}
        state = str(breaker(f"upstream:{version_id}").state())
        requests, availability = int(sla.get("requests") or 0), _float(sla.get("availability"))
        found[version_id] = Health(
            version_id=version_id,
            healthy=is_healthy(state, requests, availability),
            breaker=state,
            requests=requests,
            availability=availability,
            error_rate=_float(sla.get("error_rate")),
            p50_ms=_float(sla.get("p50_ms")),
            p95_ms=_float(sla.get("p95_ms")),
            throughput_tps=_float(sla.get("throughput_tps")),
        )
    return found


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class HealthCache:
    """Offers' health in this worker's memory: `get` answers at once (unknown offers count as healthy) and starts a
    background refresh of what is older than `ROUTING_HEALTH_SECONDS`; an open circuit seen by a call is noted
    at once."""

    def __init__(self) -> None:
        self.known: dict[str, tuple[float, Health]] = {}
        self._refreshing: set[str] = set()
        self.generation = 0  # changes whenever what is known changes (routing reuses what it built meanwhile)

    def clear(self) -> None:
        self.known.clear()
        self._refreshing.clear()
        self.generation += 1

    def get(self, version_ids: Iterable[str]) -> dict[str, Health]:
        now = time.monotonic()
        ttl = float(consumption_settings.ROUTING_HEALTH_SECONDS)
        found, stale = {}, []
        for version_id in version_ids:
            entry = self.known.get(version_id)
            found[version_id] = entry[1] if entry else Health(version_id)
            if (entry is None or now - entry[0] > ttl) and version_id not in self._refreshing:
                stale.append(version_id)
        if stale and _loop_running():  # (outside an event loop — a shell, a test — nothing refreshes)
            self._refreshing.update(stale)
            spawn(self._refresh(stale))
        return found

    async def _refresh(self, version_ids: list[str]) -> None:
        try:
            fresh = await database_sync_to_async(offer_health, thread_sensitive=False)(version_ids)
            now = time.monotonic()
            for version_id, health in fresh.items():
                self.known[version_id] = (now, health)
            self.generation += 1
        finally:
            self._refreshing.difference_update(version_ids)

    def refresh_now(self, version_ids: Iterable[str]) -> None:
        """Read the health synchronously (tests, the offers API)."""
        now = time.monotonic()
        for version_id, health in offer_health(version_ids).items():
            self.known[version_id] = (now, health)
        self.generation += 1

    def saw_open(self, version_id: str) -> None:
        """A call found the offer's circuit open: it gets only fallback traffic until the next refresh."""
        entry = self.known.get(version_id)
        base = entry[1] if entry else Health(version_id)
        self.known[version_id] = (time.monotonic(), replace(base, breaker="open", healthy=False))
        self.generation += 1


health_cache = HealthCache()
