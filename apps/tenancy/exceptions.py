"""Domain errors of the tenancy app (subclasses of the one error model)."""

from llm_infra_django.errors import BusinessRuleError, ConflictError


class LastOwnerError(BusinessRuleError):
    code = "last_owner"
    default_message = "A tenant must keep at least one owner."


class InvalidTransitionError(ConflictError):
    code = "invalid_transition"

    def __init__(self, *, kind: str, current: str, target: str, allowed: list[str]) -> None:
        super().__init__(
            f"Cannot change {kind} from {current!r} to {target!r}; allowed: {', '.join(allowed) or 'none'}.",
            details={"current": current, "target": target, "allowed": allowed},
        )


class CapacityError(ConflictError):
    code = "capacity_reached"
    default_message = "The sharing policy has reached its maximum number of consumers."
