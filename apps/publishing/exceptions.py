"""Domain errors of the publishing app."""

from llm_infra_django.errors import ConflictError, ValidationError


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"

    def __init__(self, *, current: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"A {current} version cannot become {target}; allowed: {', '.join(allowed) or 'none (terminal)'}.",
            details={"current": current, "target": target, "allowed": allowed},
        )


class VersionRuleError(ValidationError):
    """INVALID_VERSION or VERSION_NOT_INCREMENTED, raised before anything is saved."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(
            fields={"version": [message]},
            details={"issues": [{"code": code, "field": "version", "message": message, "severity": "error"}]},
        )
