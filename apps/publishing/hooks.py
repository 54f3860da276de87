"""Extension points filled by apps above publishing (it cannot import them): measured SLA of a version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_sla_provider: Callable[[str], dict[str, Any]] | None = None


def register_sla_provider(provider: Callable[[str], dict[str, Any]]) -> None:
    """Let the consumption app report a version's measured latency, error rate and availability (from its ledger)."""
    global _sla_provider
    _sla_provider = provider


def measured_sla(version_id: Any) -> dict[str, Any] | None:
    """The measured SLA of a version, or None when nothing measures it."""
    return _sla_provider(str(version_id)) if _sla_provider is not None else None
