"""One error model: the exception hierarchy, the mapping of foreign exceptions into it, and the wire shapes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.core import exceptions as django_exceptions
from django.db import utils as db_utils
from django.http import Http404

__all__ = [
    "AppError",
    "AuthenticationError",
    "AuthorizationError",
    "BusinessRuleError",
    "CacheError",
    "CircuitOpenError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "ExternalServiceError",
    "InternalError",
    "NotFoundError",
    "PolicyViolationError",
    "QuotaExceededError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UpstreamTimeoutError",
    "ValidationError",
    "envelope",
    "openai_error_body",
    "to_app_error",
]


class AppError(Exception):
    """Base of every error the API renders. Subclasses set `status_code`, `code` and `default_message`."""

    status_code: int = 500
    code: str = "internal_error"
    default_message: str = "An internal error occurred."
    retry_after: float | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        details: Mapping[str, Any] | None = None,
        code: str | None = None,
        status_code: int | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details: dict[str, Any] = dict(details or {})
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """HTTP headers that go with this error (`Retry-After` on 429 and 503)."""
        if self.retry_after is not None and self.status_code in (429, 503):
            return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}
        return {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details or None}


class ValidationError(AppError):
    status_code = 400
    code = "validation_error"
    default_message = "Invalid input."

    def __init__(
        self,
        message: str | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        merged = dict(details or {})
        if fields:
            merged["fields"] = dict(fields)
            if message is None:
                message = "Invalid input: " + "; ".join(
                    f"{name}: {_first_message(errors)}" for name, errors in fields.items()
                )
        super().__init__(message, details=merged, code=code)


class AuthenticationError(AppError):
    status_code = 401
    code = "authentication_error"
    default_message = "Authentication credentials were not provided or are invalid."


class AuthorizationError(AppError):
    status_code = 403
    code = "authorization_error"
    default_message = "You do not have permission to perform this action."


class PolicyViolationError(AppError):
    status_code = 403
    code = "policy_violation"
    default_message = "The request violates a policy."

    def __init__(self, message: str | None = None, *, violations: Sequence[Any] = (), **kwargs: Any) -> None:
        self.violations = list(violations)
        details = {**kwargs.pop("details", {}), "violations": self.violations}
        super().__init__(message, details=details, **kwargs)


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"
    default_message = "Not found."

    def __init__(self, resource: str | None = None, id: Any = None, *, message: str | None = None) -> None:
        self.resource, self.id = resource, id
        if message is None and resource:
            message = f"{resource} {id!s} not found." if id is not None else f"{resource} not found."
        details = {"resource": resource, "id": str(id) if id is not None else None} if resource else None
        super().__init__(message, details=details)


class ConflictError(AppError):
    status_code = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class BusinessRuleError(AppError):
    status_code = 422
    code = "business_rule_error"
    default_message = "The request breaks a business rule."


class QuotaExceededError(AppError):
    status_code = 402
    code = "quota_exceeded"
    default_message = "Quota exceeded."

    def __init__(
        self,
        message: str | None = None,
        *,
        quota: str,
        limit: Any,
        used: Any,
        resets_at: datetime | None = None,
    ) -> None:
        self.quota, self.limit, self.used, self.resets_at = quota, limit, used, resets_at
        details = {
            "quota": quota,
            "limit": str(limit),
            "used": str(used),
            "resets_at": resets_at.isoformat() if resets_at else None,
        }
        super().__init__(message or f"Quota {quota!r} exceeded: {used} of {limit} used.", details=details)


class RateLimitError(AppError):
    status_code = 429
    code = "rate_limit_exceeded"
    default_message = "Rate limit exceeded."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        details = dict(kwargs.pop("details", {}) or {})
        if retry_after is not None:
            details.setdefault("retry_after", max(1, math.ceil(retry_after)))
        super().__init__(message, details=details, **kwargs)


class InternalError(AppError):
    pass


class DatabaseError(AppError):
    code = "database_error"
    default_message = "A database error occurred."


class CacheError(AppError):
    code = "cache_error"
    default_message = "A cache error occurred."


class ConfigurationError(AppError):
    code = "configuration_error"
    default_message = "The service is misconfigured."


class ExternalServiceError(AppError):
    status_code = 502
    code = "external_service_error"
    default_message = "An upstream service failed."

    def __init__(self, message: str | None = None, *, service: str | None = None, **kwargs: Any) -> None:
        self.service = service
        details = {**(kwargs.pop("details", None) or {}), **({"service": service} if service else {})}
        super().__init__(
            message or (f"Upstream service {service!r} failed." if service else None), details=details, **kwargs
        )


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class ServiceUnavailableError(AppError):
    status_code = 503
    code = "service_unavailable"
    default_message = "The service is temporarily unavailable."

    def __init__(self, message: str | None = None, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class CircuitOpenError(ServiceUnavailableError):
    default_message = "The upstream is failing; its circuit is open."

    def __init__(self, name: str, *, retry_after: float | None = None, message: str | None = None) -> None:
        self.name = name
        super().__init__(message or f"Circuit {name!r} is open.", retry_after=retry_after, details={"circuit": name})


class UpstreamTimeoutError(AppError):
    status_code = 504
    code = "timeout"
    default_message = "The upstream did not answer in time."

    def __init__(self, message: str | None = None, *, service: str | None = None, **kwargs: Any) -> None:
        self.service = service
        details = {**(kwargs.pop("details", None) or {}), **({"service": service} if service else {})}
        super().__init__(
            message or (f"Upstream service {service!r} timed out." if service else None), details=details, **kwargs
        )


def _first_message(errors: Any) -> str:
    if isinstance(errors, (list, tuple)) and errors:
        return _first_message(errors[0])
    if isinstance(errors, Mapping) and errors:
        key, value = next(iter(errors.items()))
        return f"{key}: {_first_message(value)}"
    return str(errors)


def _drf_fields(detail: Any) -> dict[str, Any]:
    """DRF's ErrorDetail tree as plain data: {"field": ["message", ...]} (nested for nested serializers)."""
    if isinstance(detail, Mapping):
        return {str(key): _drf_fields(value) for key, value in detail.items()}
    if isinstance(detail, (list, tuple)):
        return [_drf_fields(item) for item in detail]  # type: ignore[return-value]
    return str(detail)  # type: ignore[return-value]


def to_app_error(exc: BaseException) -> AppError | None:
    """Translate an exception into an `AppError`, or None when it is unexpected (a bug → 500)."""
    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, Http404):
        return NotFoundError(message=str(exc) if exc.args else None)
    if isinstance(exc, django_exceptions.PermissionDenied):
        return AuthorizationError(str(exc) or None)
    if isinstance(exc, django_exceptions.ValidationError):
        if hasattr(exc, "error_dict"):
            return ValidationError(fields={key: [str(m) for m in msgs] for key, msgs in exc.message_dict.items()})
        return ValidationError("; ".join(exc.messages) or None, fields={"non_field_errors": exc.messages})
    if isinstance(exc, django_exceptions.SuspiciousOperation):
        return AppError("Bad request.", status_code=400, code="bad_request")
    if isinstance(exc, (db_utils.OperationalError, db_utils.InterfaceError)):
        return ServiceUnavailableError("The database is unavailable.", retry_after=1, code="database_unavailable")
    return _from_drf(exc)


def _from_drf(exc: BaseException) -> AppError | None:
    try:
        from rest_framework import exceptions as drf
    except ImportError:  # DRF is optional for projects using only the Django middleware
        return None
    if not isinstance(exc, drf.APIException):
        return None
    if isinstance(exc, drf.ValidationError):
        detail = _drf_fields(exc.detail)
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return ValidationError(fields=fields)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        return AuthenticationError(str(exc.detail))
    if isinstance(exc, drf.PermissionDenied):
        return AuthorizationError(str(exc.detail))
    if isinstance(exc, drf.NotFound):
        return NotFoundError(message=str(exc.detail))
    if isinstance(exc, drf.Throttled):
        return RateLimitError(str(exc.detail), retry_after=exc.wait)
    return AppError(str(exc.detail), status_code=exc.status_code, code=str(exc.default_code))


def envelope(error: AppError, request_id: str | None) -> dict[str, Any]:
    """The management API's one error shape."""
    return {"error": error.as_dict(), "request_id": request_id}


_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def openai_error_body(error: AppError, *, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape (`{"error": {"message", "type", "code", "param"}}`), parsed by the official SDKs."""
    if param is None:
        fields = error.details.get("fields") if error.details else None
        if isinstance(fields, Mapping) and fields:
            param = next(iter(fields))
        elif error.details and isinstance(error.details.get("field"), str):
            param = error.details["field"]
    error_type = _OPENAI_TYPES.get(
        error.status_code, "api_error" if error.status_code >= 500 else "invalid_request_error"
    )
    return {"error": {"message": error.message, "type": error_type, "code": error.code, "param": param}}
