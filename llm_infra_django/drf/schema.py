"""OpenAPI documents (drf-spectacular): the error envelope, documented on every operation for the errors any of them
can answer, so that a client (or a contract fuzzer) finds every status code the API sends in the schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

__all__ = ["AutoSchema", "ErrorBodySerializer", "ErrorEnvelopeSerializer", "ErrorResponses"]


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `validation_error`, `not_found`.")
    message = serializers.CharField()
    details = serializers.JSONField(
        allow_null=True, help_text='For validation errors: `{"fields": {"<field>": ["<message>", ...]}}`.'
    )


class ErrorEnvelopeSerializer(serializers.Serializer):
    """The one error shape of the management API (`llm_infra_django.errors.envelope`)."""

    error = ErrorBodySerializer()
    request_id = serializers.CharField(allow_null=True)


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's schema, plus the error envelope for the errors every operation can answer (bad input, no or
    a bad credential, a refusal, an unknown id, a throttle; a conflict for writes; a body it cannot read) where the view
    documents none.

    Use it as `REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"]`; a view's own `@extend_schema(responses=...)` entry for a code
    (with its specific description) wins."""

    error_serializer: ClassVar[type[serializers.Serializer]] = ErrorEnvelopeSerializer
    error_descriptions: ClassVar[dict[int, str]] = {
        400: "Invalid input: `error.details.fields` names each offending field.",
        401: "Not authenticated: no credentials, or an unknown, expired or revoked API key.",
        403: "Authenticated, but not allowed to do this.",
        404: "Nothing visible to the caller has this id.",
        409: "Conflicts with the current state.",
        415: "The body's content type is not one the operation accepts, or the body cannot be parsed as that type.",
        429: "Too many requests: retry after the `Retry-After` header's seconds.",
    }
    common_errors: ClassVar[tuple[int, ...]] = (400, 401, 403, 404, 429)
    write_errors: ClassVar[tuple[int, ...]] = (409,)
    body_errors: ClassVar[tuple[int, ...]] = (415,)

    def get_error_codes(self, operation: dict[str, Any]) -> tuple[int, ...]:
        """The error status codes documented on this operation unless the view documents them itself."""
        codes = self.common_errors
        if self.method not in ("GET", "HEAD", "OPTIONS"):
            codes += self.write_errors
        if "requestBody" in operation:
            codes += self.body_errors
        return codes

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation: dict[str, Any] | None = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation.setdefault("responses", {})
        for code in self.get_error_codes(operation):
            if str(code) not in responses:
                error = OpenApiResponse(self.error_serializer, description=self.error_descriptions[code])
                responses[str(code)] = self._get_response_for_code(error, str(code))
        operation["responses"] = dict(sorted(responses.items()))
        return operation


class ErrorResponses:
    """An API's error table: `errors = ErrorResponses({402: "A quota is exhausted."})`, then
    `@extend_schema(responses={200: ..., **errors(400, 402)})` documents those codes with the error envelope, each
    described by the table, else by `AutoSchema.error_descriptions`."""

    def __init__(self, descriptions: Mapping[int, str]) -> None:
        self.descriptions: dict[int, str] = {**AutoSchema.error_descriptions, **descriptions}

    def __call__(self, *codes: int) -> dict[int, OpenApiResponse]:
        """The documented error responses of an operation (a code the table does not describe is a `KeyError`)."""
        return {code: OpenApiResponse(ErrorEnvelopeSerializer, description=self.descriptions[code]) for code in codes}
