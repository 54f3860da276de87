"""The catalog's rule engine: each field's value through its rule, errors collected under the field's path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from apps.catalog.compliance import license_allows_commercial_use
from apps.catalog.validation import ErrorCollector, clean_choice, clean_number, clean_text


def text_rule(max_length: int, *, required: bool = False) -> Any:
    return lambda value, path: clean_text(value, path, max_length=max_length, required=required)


def choice_rule(choices: Sequence[str]) -> Any:
    return lambda value, path: clean_choice(value, path, choices)


def number_rule(value: Any, path: str) -> float | None:
    return clean_number(value, path)


def clean_values(values: Mapping[str, Any], rules: Mapping[str, Any], collector: ErrorCollector) -> dict[str, Any]:
    """Each value through its rule; errors go to the collector under the field's path."""
    unknown = sorted(set(values) - set(rules))
    for name in unknown:
        collector.add(name, "Unknown field.")
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        if name in rules:
            before = len(collector.errors)
            result = collector.check(name, lambda rule=rules[name], value=value, name=name: rule(value, name))
            if len(collector.errors) == before:
                cleaned[name] = result
    return cleaned


def commercial_default(values: dict[str, Any]) -> None:
    """A license known to allow (or forbid) commercial use sets `commercial_use` when the caller gives none."""
    if "commercial_use" not in values:
        values["commercial_use"] = bool(license_allows_commercial_use(values.get("license", "")))
