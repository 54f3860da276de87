"""Domain errors of the catalog app (subclasses of the one error model)."""

from __future__ import annotations

from llm_infra_django.errors import ConflictError


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"

    def __init__(self, *, kind: str, current: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"A {current} {kind} cannot become {target}; allowed: {', '.join(allowed) or 'none (terminal)'}.",
            details={"current": current, "target": target, "allowed": allowed},
        )


class LineageCycleError(ConflictError):
    """The edge would close a cycle: the lineage graph stays acyclic."""

    code = "lineage_cycle"

    def __init__(self, *, source: str, target: str, cycle: list[str]) -> None:
        super().__init__(
            f"'{target}' already derives from '{source}' in the lineage; this edge would close a cycle.",
            details={"cycle": cycle},
        )
