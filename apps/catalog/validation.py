"""Input rules of the catalog, shared by the API, the admin and any other caller of the services.

Every rule names the offending field by its path in the API representation (`artifacts[1].sha256`, `tags[0]`), and
a call collects all its errors before raising one `ValidationError`, so nothing is half-checked or half-written.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

import pycountry
import semver

from apps.catalog.models import ArtifactFormat, SourceType
from llm_infra_django.errors import ValidationError
from llm_infra_django.jsonvalues import NUL, NUL_MESSAGE, unstorable

# Slugs use the tenancy alphabet (single hyphens), so `<owner>--<slug>` handles split unambiguously.
SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){0,61}[a-z0-9]$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
URI_RE = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]*)://\S+$")
ARTIFACT_SCHEMES = frozenset({"s3", "gs", "az", "https", "http", "hf", "oci", "file"})
ARTIFACT_KEYS = frozenset({"uri", "format", "size_bytes", "sha256"})
SOURCE_KEYS = frozenset({"type", "uri", "description"})
MAX_ARTIFACTS = 100
MAX_SOURCES = 100
MAX_TAGS = 20
MAX_TAG_LENGTH = 50
MAX_BIGINT = 2**63 - 1

Errors = dict[str, list[str]]


class ErrorCollector:
    """Collects messages by field path; `raise_if_any()` raises one 400 naming them all."""

    def __init__(self) -> None:
        self.errors: Errors = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, []).append(message)

    def check(self, path: str, rule: Callable[[], Any]) -> Any:
        """Run `rule()`; a `ValidationError` it raises is recorded under its own paths (or `path`)."""
        try:
            return rule()
        except ValidationError as exc:
            fields = exc.details.get("fields") or {path: [exc.message]}
            for name, messages in fields.items():
                for message in messages:
                    self.add(name, message)
            return None

    def raise_if_any(self) -> None:
        if self.errors:
            raise ValidationError(fields=self.errors)


def fail(path: str, message: str) -> ValidationError:
    return ValidationError(fields={path: [message]})


def clean_slug(value: Any, path: str = "slug") -> str:
    if not isinstance(value, str) or not SLUG_RE.match(value):
        raise fail(
            path, "Use 2-63 lower-case letters, digits and single hyphens, starting and ending with one of them."
        )
    return value


def parse_version(value: Any, path: str = "version") -> semver.Version:
    """A SemVer 2.0 version (pre-releases allowed, build metadata refused: it has no precedence)."""
    if not isinstance(value, str):
        raise fail(path, "Give the version as a string like 1.2.0.")
    try:
        version = semver.Version.parse(value.strip())
    except (ValueError, TypeError):
        raise fail(path, f"{value!r} is not a semantic version like 1.2.0 or 2.0.0-rc.1.") from None
    if version.build:
        raise fail(path, f"{value!r} has build metadata (+{version.build}), which SemVer ignores for ordering.")
    return version


def clean_text(value: Any, path: str, *, max_length: int, required: bool = True) -> str:
    if not isinstance(value, str) or (required and not value.strip()):
        raise fail(path, "A non-empty string." if required else "A string.")
    if len(value) > max_length:
        raise fail(path, f"At most {max_length} characters.")
    if NUL in value:
        raise fail(path, NUL_MESSAGE)
    return value.strip()


def clean_choice(value: Any, path: str, choices: Iterable[str]) -> str:
    allowed = list(choices)
    if value not in allowed:
        raise fail(path, f"Use one of {', '.join(allowed)}.")
    return str(value)


def clean_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise fail(path, "true or false.")
    return value


def clean_optional_whole(value: Any, path: str) -> int | None:
    return None if value is None else clean_whole(value, path)


def clean_whole(value: Any, path: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum or value > MAX_BIGINT:
        raise fail(path, f"A whole number ≥ {minimum}.")
    return value


def clean_number(value: Any, path: str, *, minimum: float = 0.0, maximum: float | None = None) -> float | None:
    """A finite number within bounds, or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fail(path, "A finite number.")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum:g} and {maximum:g}" if maximum is not None else f"≥ {minimum:g}"
        raise fail(path, f"A number {bound}.")
    return float(value)


def clean_sha256(value: Any, path: str) -> str:
    """64 hexadecimal characters (stored lower-case)."""
    if not isinstance(value, str) or not SHA256_RE.match(value.strip().lower()):
        raise fail(path, "A SHA-256 digest: exactly 64 hexadecimal characters.")
    return value.strip().lower()


def clean_artifacts(value: Any, path: str = "artifacts") -> list[dict[str, Any]]:
    """A list of `{uri, format, size_bytes, sha256}`; every bad item field is named by its path."""
    if not isinstance(value, list):
        raise fail(path, "A list of artifacts.")
    if len(value) > MAX_ARTIFACTS:
        raise fail(path, f"At most {MAX_ARTIFACTS} artifacts.")
    collector = ErrorCollector()
    cleaned: list[dict[str, Any]] = []
    seen_uris: set[str] = set()
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            collector.add(where, "An object with uri, format, size_bytes and sha256.")
            continue
        for key in sorted(set(item) - ARTIFACT_KEYS):
            collector.add(f"{where}.{key}", "Unknown field.")
        uri = collector.check(f"{where}.uri", lambda item=item, where=where: _artifact_uri(item.get("uri"), where))
        if uri is not None and uri in seen_uris:
            collector.add(f"{where}.uri", "The same URI is listed twice.")
        if uri is not None:
            seen_uris.add(uri)
        fmt = item.get("format")
        if fmt not in ArtifactFormat.values:
            collector.add(f"{where}.format", f"Use one of {', '.join(ArtifactFormat.values)}.")
        size = collector.check(
            f"{where}.size_bytes",
            lambda item=item, where=where: clean_whole(item.get("size_bytes"), f"{where}.size_bytes"),
        )
        digest = collector.check(
            f"{where}.sha256", lambda item=item, where=where: clean_sha256(item.get("sha256"), f"{where}.sha256")
        )
        cleaned.append({"uri": uri, "format": fmt, "size_bytes": size, "sha256": digest})
    collector.raise_if_any()
    return cleaned


def _artifact_uri(value: Any, where: str) -> str:
    uri = clean_text(value, f"{where}.uri", max_length=1000)
    match = URI_RE.match(uri)
    if not match or match.group("scheme") not in ARTIFACT_SCHEMES:
        raise fail(f"{where}.uri", f"A URI with one of the schemes {', '.join(sorted(ARTIFACT_SCHEMES))}.")
    return uri


def clean_string_list(
    value: Any, path: str, *, max_items: int, max_length: int, normalise: Callable[[str], str] = str.strip
) -> list[str]:
    """A list of distinct non-empty strings (first occurrence kept)."""
    if not isinstance(value, list):
        raise fail(path, "A list of strings.")
    if len(value) > max_items:
        raise fail(path, f"At most {max_items} items.")
    collector = ErrorCollector()
    cleaned: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            collector.add(f"{path}[{index}]", "A non-empty string.")
        elif len(item) > max_length:
            collector.add(f"{path}[{index}]", f"At most {max_length} characters.")
        elif NUL in item:
            collector.add(f"{path}[{index}]", NUL_MESSAGE)
        elif normalise(item) not in cleaned:
            cleaned.append(normalise(item))
    collector.raise_if_any()
    return cleaned


def clean_tags(value: Any, path: str = "tags") -> list[str]:
    return clean_string_list(
        value, path, max_items=MAX_TAGS, max_length=MAX_TAG_LENGTH, normalise=lambda s: s.strip().lower()
    )


def clean_languages(value: Any, path: str = "languages") -> list[str]:
    """ISO 639-1 codes (`en`, `fr`), lower-case."""
    codes = clean_string_list(value, path, max_items=100, max_length=3, normalise=lambda s: s.strip().lower())
    collector = ErrorCollector()
    for index, code in enumerate(codes):
        if len(code) != 2 or pycountry.languages.get(alpha_2=code) is None:
            collector.add(f"{path}[{index}]", f"{code!r} is not an ISO 639-1 language code such as en or fr.")
    collector.raise_if_any()
    return codes


def clean_certifications(value: Any, path: str = "certifications") -> list[str]:
    return clean_string_list(value, path, max_items=50, max_length=50, normalise=lambda s: s.strip().upper())


def clean_license(value: Any, path: str = "license") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > 64 or not re.fullmatch(r"[A-Za-z0-9.+-]*", value.strip()):
        raise fail(path, "An SPDX-style license id (letters, digits, '.', '+', '-'), e.g. apache-2.0.")
    return value.strip().lower()


def clean_sources(value: Any, path: str = "sources") -> list[dict[str, str]]:
    """Provenance sources: `{type, uri, description}` with a known type."""
    if not isinstance(value, list):
        raise fail(path, "A list of sources.")
    if len(value) > MAX_SOURCES:
        raise fail(path, f"At most {MAX_SOURCES} sources.")
    collector = ErrorCollector()
    cleaned: list[dict[str, str]] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        if not isinstance(item, dict):
            collector.add(where, "An object with type, uri and description.")
            continue
        for key in sorted(set(item) - SOURCE_KEYS):
            collector.add(f"{where}.{key}", "Unknown field.")
        if item.get("type") not in SourceType.values:
            collector.add(f"{where}.type", f"Use one of {', '.join(SourceType.values)}.")
        uri = collector.check(
            f"{where}.uri",
            lambda item=item, where=where: clean_text(
                item.get("uri", ""), f"{where}.uri", max_length=1000, required=False
            ),
        )
        description = collector.check(
            f"{where}.description",
            lambda item=item, where=where: clean_text(
                item.get("description", ""), f"{where}.description", max_length=1000, required=False
            ),
        )
        cleaned.append({"type": item.get("type"), "uri": uri or "", "description": description or ""})
    collector.raise_if_any()
    return cleaned


def clean_json_object(value: Any, path: str, *, max_keys: int = 200) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(path, "A JSON object.")
    if len(value) > max_keys:
        raise fail(path, f"At most {max_keys} keys.")
    bad = unstorable(value, path)
    if bad:
        raise ValidationError(fields={where: [message] for where, message in bad.items()})
    return value


def clean_scores(value: Any, path: str = "scores") -> dict[str, float]:
    """Raw metrics of an evaluation: names to finite numbers."""
    scores = clean_json_object(value, path)
    collector = ErrorCollector()
    for key, number in scores.items():
        collector.check(
            f"{path}.{key}", lambda number=number, key=key: clean_number(number, f"{path}.{key}", minimum=-math.inf)
        )
    collector.raise_if_any()
    return {str(k): float(v) for k, v in scores.items()}


def unknown_fields(values: Iterable[str], allowed: Iterable[str]) -> None:
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValidationError(fields={name: ["Unknown field."] for name in unknown})
