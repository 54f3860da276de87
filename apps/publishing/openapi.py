"""A provider's OpenAPI document checked by openapi-spec-validator within bounds: only references inside the document
resolve (nothing is read from a file or the network), the validator's work is bounded, and messages quote the document
only briefly."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any

from jsonschema.exceptions import ValidationError as SchemaValidationError
from jsonschema_path import SchemaPath
from jsonschema_path.accessors import SchemaAccessor
from openapi_spec_validator.shortcuts import get_validator_cls
from openapi_spec_validator.validation import keywords
from openapi_spec_validator.validation.exceptions import ValidatorDetectError
from openapi_spec_validator.validation.validators import SpecValidator
from referencing import Registry
from referencing.exceptions import InvalidAnchor, NoSuchAnchor, PointerToNowhere, Unresolvable
from referencing.jsonschema import DRAFT202012

from apps.publishing.conf import publishing_settings
from apps.publishing.validation import Issue

REFERENCE_KEYWORDS = frozenset({"$ref", "$dynamicRef", "$recursiveRef"})
EXCERPT_CHARS = 100
MAX_REPORTED = 20  # issues of one kind reported for a document (each names its field)


class DocumentTooComplexError(Exception):
    """The validation needed more steps than its budget."""


class BudgetedAccessor(SchemaAccessor):
    """Counts every node the validator reads against a budget. Each read costs at most the document's depth plus a
    chain of references, so the budget bounds the validator's walk, which references can make exponential in the
    document's size (an `allOf` of two references to a schema that does the same, twenty levels down)."""

    def __init__(self, schema: dict[str, Any], resolver: Any, *, budget: int) -> None:
        super().__init__(schema, resolver)
        self.budget = budget

    def get_resolved(self, parts: Sequence[Any]) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise DocumentTooComplexError
        return super().get_resolved(parts)


class UncheckedDefault(keywords.ValueValidator):
    """Defaults are not validated against their schemas: that runs the provider's patterns and schemas on the
    provider's values, at a cost nothing bounds (a backtracking `pattern`, `uniqueItems` over thousands of objects)."""

    def __call__(self, schema: SchemaPath, value: Any) -> Iterator[SchemaValidationError]:
        return iter(())


@cache
def bounded(validator_class: type[SpecValidator]) -> type[SpecValidator]:
    """`validator_class` without default checks, and without the library's cache of every validator it ran."""

    class Bounded(validator_class):  # type: ignore[misc,valid-type]
        keyword_validators = {**validator_class.keyword_validators, "default": UncheckedDefault}

        def iter_errors(self) -> Iterator[SchemaValidationError]:
            # The library's version is memoised with an unbounded lru_cache keyed by the validator: each document
            # validated would stay in memory for the life of the worker.
            yield from self.schema_validator.iter_errors(self.schema)
            yield from self.root_validator(self.schema_path)

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{validator_class.__name__}"
    return Bounded


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of `text`, control characters escaped: a message quotes a document, never more."""
    escaped = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text[:limit])
    return escaped[:limit] + ("…" if len(text) > limit or len(escaped) > limit else "")


def structure_issues(document: dict[str, Any], *, max_depth: int) -> list[Issue]:
    """Nesting deeper than `max_depth`, and every reference that leaves the document (a file, a URL, another
    document): only `#…` references resolve."""
    external: list[Issue] = []
    pending: list[tuple[str, Any, int]] = [("openapi", document, 1)]
    while pending:
        path, node, depth = pending.pop()
        if depth > max_depth:
            return [Issue("OPENAPI_TOO_DEEP", path, f"The document is nested deeper than {max_depth} levels.")]
        if isinstance(node, dict):
            for key, value in node.items():
                where = f"{path}.{excerpt(str(key))}"
                if key in REFERENCE_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
                    message = f"Only references inside the document (#/…) are allowed, not {excerpt(value)}."
                    external.append(Issue("EXTERNAL_REF", where, message))
                else:
                    pending.append((where, value, depth + 1))
        elif isinstance(node, list):
            pending.extend((f"{path}[{index}]", item, depth + 1) for index, item in enumerate(node))
    return sorted(external, key=lambda issue: issue.field)[:MAX_REPORTED]


def first_error(document: dict[str, Any], *, max_steps: int) -> Exception | None:
    """The validator's first finding on `document`, reading at most `max_steps` nodes and resolving references inside
    the document only: its registry has no way to retrieve anything else."""
    registry: Registry[Any] = Registry().with_resource("", DRAFT202012.create_resource(document))
    accessor = BudgetedAccessor(document, registry.resolver(base_uri=""), budget=max_steps)
    try:
        validator = bounded(get_validator_cls(document))(SchemaPath(accessor))
        return next(validator.iter_errors(), None)
    except Exception as exc:  # unresolvable references, too much work, recursion, no version key, ...
        return exc


def document_issues(document: dict[str, Any]) -> list[Issue]:
    """Errors of an OpenAPI document (structure first, then the validator's first finding), or none."""
    issues = structure_issues(document, max_depth=publishing_settings.OPENAPI_MAX_DEPTH)
    if issues:
        return issues
    max_steps = publishing_settings.OPENAPI_MAX_STEPS
    error = first_error(document, max_steps=max_steps)
    if error is None:
        return []
    if isinstance(error, SchemaValidationError):
        path = "".join(f"[{part}]" if isinstance(part, int) else f".{excerpt(str(part))}" for part in error.path)
        message = (error.message.splitlines() or ["Invalid OpenAPI document."])[0]
        return [Issue("INVALID_OPENAPI", f"openapi{path}", excerpt(message))]
    if isinstance(error, DocumentTooComplexError):
        message = f"Validating the document needs more than {max_steps} steps (references to references?)."
        return [Issue("OPENAPI_TOO_COMPLEX", "openapi", message)]
    if isinstance(error, (PointerToNowhere, NoSuchAnchor, InvalidAnchor)):
        return [Issue("INVALID_OPENAPI", "openapi", f"The reference {excerpt(error.ref)} points nowhere.")]
    if isinstance(error, Unresolvable):  # a reference made external by a base URI (`$id`)
        message = f"Only references inside the document are allowed, not {excerpt(error.ref)}."
        return [Issue("EXTERNAL_REF", "openapi", message)]
    if isinstance(error, ValidatorDetectError):  # it carries no message at all
        return [Issue("INVALID_OPENAPI", "openapi", "Not an OpenAPI document: it has no 'openapi' version field.")]
    text = (str(error).splitlines() or [type(error).__name__])[0]
    return [Issue("INVALID_OPENAPI", "openapi", excerpt(text))]
