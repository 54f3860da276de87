"""Extension points filled by apps above publishing (it cannot import them): measured SLA of a version, the check of
the catalog models a definition's `serves` names."""

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


_serves_checker: Callable[[Any, list[str]], dict[str, list[str]]] | None = None


def register_serves_checker(checker: Callable[[Any, list[str]], dict[str, list[str]]]) -> None:
    """Let an app that knows the catalog check a definition's `serves`: `checker(publisher, refs)` answers the
    problems by path (`{"serves[1]": ["..."]}`), empty when the publisher may offer every model named."""
    global _serves_checker
    _serves_checker = checker


def serves_issues(publisher: Any, refs: list[str]) -> dict[str, list[str]]:
    """The problems of `refs` for `publisher` by path; none when no checker is registered (checked at activation)."""
    return _serves_checker(publisher, refs) if _serves_checker is not None and refs else {}
