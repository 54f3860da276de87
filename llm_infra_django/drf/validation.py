"""Input validation by DRF serializers, in a DRF view and outside one too (GraphQL mutations validate with the REST
API's own serializers): errors as the one error model, each naming its field by path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from rest_framework.serializers import BaseSerializer
from rest_framework.settings import api_settings

from llm_infra_django.errors import ValidationError

__all__ = ["ValidatedInputMixin", "checked", "field_paths", "validated"]

SerializerT = TypeVar("SerializerT", bound=BaseSerializer)


def validated(
    serializer_class: Any, data: Any, context: dict[str, Any] | None = None, instance: Any = None, partial: bool = False
) -> dict[str, Any]:
    """Input validated by the REST API's own serializer: a `ValidationError` naming each offending field path."""
    serializer = serializer_class(instance, data=data, context=context or {}, partial=partial)
    return dict(checked(serializer).validated_data)


def checked(serializer: SerializerT) -> SerializerT:
    """`serializer` once its data is valid (for a serializer that does more than give `validated_data`, e.g. a
    query's filters), else a `ValidationError` naming each offending field path."""
    if not serializer.is_valid():
        raise ValidationError(fields=field_paths(serializer.errors))
    return serializer


class _SerializerContextView(Protocol):
    def get_serializer_context(self) -> dict[str, Any]: ...


class ValidatedInputMixin:
    """A DRF view's `validated(serializer_class, data)`: `validated()` with the view's `get_serializer_context()`."""

    def validated(self: _SerializerContextView, serializer_class: Any, data: Any) -> dict[str, Any]:
        """`data` validated by `serializer_class`, or a 400 naming each offending field by its path."""
        return validated(serializer_class, data, self.get_serializer_context())


def field_paths(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error tree as `{"endpoint.url": [...], "capabilities[1].name": [...], "tags[0]": [...]}`."""
    paths: dict[str, list[str]] = {}

    def add(path: str, messages: list[str]) -> None:
        paths.setdefault(path or api_settings.NON_FIELD_ERRORS_KEY, []).extend(messages)

    if isinstance(detail, Mapping):
        for key, value in detail.items():
            if key == api_settings.NON_FIELD_ERRORS_KEY:
                path = prefix
            elif isinstance(key, int):
                path = f"{prefix}[{key}]"
            else:
                path = f"{prefix}.{key}" if prefix else str(key)
            for sub_path, messages in field_paths(value, path).items():
                add(sub_path, messages)
    elif isinstance(detail, (list, tuple)):
        if all(not isinstance(item, (Mapping, list, tuple)) for item in detail):
            add(prefix, [str(item) for item in detail])
        else:
            for index, item in enumerate(detail):
                if item:
                    for sub_path, messages in field_paths(item, f"{prefix}[{index}]").items():
                        add(sub_path, messages)
    else:
        add(prefix, [str(detail)])
    return paths
