"""Validation rules of the publishing pipeline's first three steps: schema rules, OpenAPI, built-in policy.

Each rule yields `Issue`s with a stable code and the path of the field in the API representation
(`endpoint.url`, `compliance.data_residency[1]`, ...), so a provider knows exactly what to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pycountry

from apps.publishing.conf import publishing_settings
from apps.publishing.models import ComplianceLevel, PricingModel, Protocol, ServiceVersion, SupportLevel
from apps.publishing.network import PrivateAddressError, check_public_url
from apps.publishing.versioning import VersionError, parse_version

EU_COUNTRIES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
SANCTIONED_COUNTRIES = frozenset({"KP", "IR", "SY", "CU"})


@dataclass(frozen=True)
class Issue:
    code: str
    field: str
    message: str
    severity: str = "error"  # error | warning for schema/OpenAPI; low|medium|high|critical for policy

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


# --- Step 1: schema rules ----------------------------------------------------------------------------------


def version_issues(version: ServiceVersion) -> Iterator[Issue]:
    """INVALID_VERSION and VERSION_NOT_INCREMENTED (against every other version of the service)."""
    try:
        numbers = parse_version(version.version)
    except VersionError as exc:
        yield Issue("INVALID_VERSION", "version", str(exc))
        return
    if version.service_id is None:
        return
    others = ServiceVersion.objects.filter(service_id=version.service_id).exclude(pk=version.pk)
    latest = others.order_by("-major", "-minor", "-patch").values_list("major", "minor", "patch", "version").first()
    if latest and numbers <= tuple(latest[:3]):
        yield Issue(
            "VERSION_NOT_INCREMENTED",
            "version",
            f"{version.version} is not greater than the latest version {latest[3]}.",
        )


def endpoint_issues(version: ServiceVersion) -> Iterator[Issue]:
    if version.protocol == Protocol.ECHO:
        return
    if not version.endpoint_url:
        yield Issue("MISSING_ENDPOINT", "endpoint.url", "An OpenAI-compatible service needs its base URL.")
        return
    scheme = urlsplit(version.endpoint_url).scheme
    if publishing_settings.REQUIRE_HTTPS and scheme != "https":
        yield Issue("INSECURE_ENDPOINT", "endpoint.url", "The endpoint must use https.")
    if not publishing_settings.ALLOW_PRIVATE_ENDPOINTS:
        try:
            check_public_url(version.endpoint_url)
        except PrivateAddressError as exc:
            yield Issue("PRIVATE_ENDPOINT", "endpoint.url", f"The endpoint is not reachable publicly: {exc}")


def _price(value: Decimal | None) -> Decimal:
    return value if value is not None else Decimal(0)


def pricing_issues(version: ServiceVersion) -> Iterator[Issue]:
    token_prices = {
        "pricing.input_per_mtok": version.price_input_per_mtok,
        "pricing.output_per_mtok": version.price_output_per_mtok,
        "pricing.cached_input_per_mtok": version.price_cached_input_per_mtok,
    }
    all_prices = {**token_prices, "pricing.per_request": version.price_per_request}
    for field, value in all_prices.items():
        if value is not None and value < 0:
            yield Issue("INCONSISTENT_PRICING", field, "Prices cannot be negative.")
    model = version.pricing_model
    if model == PricingModel.FREE:
        for field, value in all_prices.items():
            if _price(value) > 0:
                yield Issue("INCONSISTENT_PRICING", field, "A free service cannot carry a price.")
    elif model == PricingModel.PER_TOKEN:
        for field in ("pricing.input_per_mtok", "pricing.output_per_mtok"):
            if token_prices[field] is None:
                yield Issue("MISSING_PRICING_RATES", field, "Per-token pricing needs input and output prices.")
    elif model == PricingModel.PER_REQUEST:
        if version.price_per_request is None:
            yield Issue("MISSING_PRICING_RATES", "pricing.per_request", "Per-request pricing needs its price.")
        for field, value in token_prices.items():
            if _price(value) > 0:
                yield Issue("INCONSISTENT_PRICING", field, "Per-request pricing cannot also charge per token.")
    cached, plain = version.price_cached_input_per_mtok, version.price_input_per_mtok
    if cached is not None and plain is not None and cached > plain:
        yield Issue(
            "INCONSISTENT_PRICING", "pricing.cached_input_per_mtok", "Cached input cannot cost more than input."
        )


def compliance_issues(version: ServiceVersion) -> Iterator[Issue]:
    for index, code in enumerate(version.data_residency or []):
        if not (isinstance(code, str) and len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code)):
            yield Issue(
                "INVALID_COUNTRY_CODE",
                f"compliance.data_residency[{index}]",
                f"{code!r} is not an ISO-3166 alpha-2 country code.",
            )
    if set(version.data_residency or []) & EU_COUNTRIES and not version.gdpr_compliant:
        yield Issue("GDPR_REQUIRED", "compliance.gdpr", "Data residency in the EU requires GDPR compliance.")


def size_issues(version: ServiceVersion) -> Iterator[Issue]:
    size = len(
        json.dumps(
            {
                "description": version.description,
                "openapi": version.openapi_document,
                "capabilities": version.capabilities,
                "tags": version.tags,
            },
            default=str,
        )
    )
    if size > publishing_settings.MAX_SERVICE_BYTES:
        yield Issue(
            "SERVICE_TOO_LARGE",
            "",
            f"The definition is {size} bytes; the limit is {publishing_settings.MAX_SERVICE_BYTES}.",
        )


def schema_issues(version: ServiceVersion) -> list[Issue]:
    """Step 1: every schema rule."""
    return [
        *version_issues(version),
        *endpoint_issues(version),
        *pricing_issues(version),
        *compliance_issues(version),
        *size_issues(version),
    ]


# --- Step 2: OpenAPI ---------------------------------------------------------------------------------------

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def openapi_issues(document: Any, *, strict: bool | None = None) -> list[Issue]:
    """Step 2: validate the attached OpenAPI document (its own `#…` references only, within bounds); lint warnings
    (errors when strict)."""
    if document in (None, {}):
        return []
    if not isinstance(document, dict):
        return [Issue("INVALID_OPENAPI", "openapi", "The OpenAPI document must be a JSON object.")]
    from apps.publishing.openapi import document_issues, excerpt  # the validator is slow to import

    errors = document_issues(document)
    if errors:
        return errors
    strict = publishing_settings.OPENAPI_STRICT if strict is None else strict
    severity = "error" if strict else "warning"
    warnings: list[Issue] = []
    if not document.get("info", {}).get("description"):
        warnings.append(Issue("OPENAPI_NO_DESCRIPTION", "openapi.info.description", "Describe the API.", severity))
    if not document.get("servers"):
        warnings.append(Issue("OPENAPI_NO_SERVERS", "openapi.servers", "List the servers.", severity))
    for path, item in (document.get("paths") or {}).items():
        for method, operation in (item or {}).items():
            if method in HTTP_METHODS and isinstance(operation, dict) and not operation.get("operationId"):
                warnings.append(
                    Issue(
                        "OPENAPI_NO_OPERATION_ID",
                        f"openapi.paths.{excerpt(str(path))}.{method}.operationId",
                        "Give every operation an operationId.",
                        severity,
                    )
                )
    return warnings


# --- Step 3: built-in policy rules (used when no Policy Engine is configured) ------------------------------


def builtin_policy_violations(version: ServiceVersion) -> list[Issue]:
    """Step 3 without a Policy Engine: residency, sanctions, certifications, transport, SLA consistency."""
    found: list[Issue] = []
    residency = set(version.data_residency or [])
    if not residency:
        found.append(
            Issue("RESIDENCY_REQUIRED", "compliance.data_residency", "Declare where data is processed.", "high")
        )
    sanctioned = sorted(residency & SANCTIONED_COUNTRIES)
    if sanctioned:
        found.append(
            Issue(
                "SANCTIONED_RESIDENCY",
                "compliance.data_residency",
                f"Data residency in sanctioned countries: {', '.join(sanctioned)}.",
                "critical",
            )
        )
    if version.compliance_level in (ComplianceLevel.CONFIDENTIAL, ComplianceLevel.RESTRICTED) and not (
        version.certifications
    ):
        found.append(
            Issue(
                "CERTIFICATION_REQUIRED",
                "compliance.certifications",
                f"{version.compliance_level.capitalize()} services need certifications.",
                "high",
            )
        )
    if (
        publishing_settings.REQUIRE_HTTPS
        and version.protocol == Protocol.OPENAI
        and (urlsplit(version.endpoint_url).scheme != "https")
    ):
        found.append(Issue("INSECURE_ENDPOINT", "endpoint.url", "Production endpoints must use https.", "critical"))
    if version.support_level == SupportLevel.ENTERPRISE and version.sla_availability < Decimal("99.9"):
        found.append(
            Issue(
                "SLA_TOO_LOW",
                "sla.availability",
                "Enterprise support needs an availability of at least 99.9 %.",
                "medium",
            )
        )
    return found


def needs_approval(version: ServiceVersion, *, publisher_trusted: bool) -> bool:
    """Step 6: confidential/restricted data, enterprise support, or an untrusted publisher need a human."""
    return (
        version.compliance_level in (ComplianceLevel.CONFIDENTIAL, ComplianceLevel.RESTRICTED)
        or version.support_level == SupportLevel.ENTERPRISE
        or not publisher_trusted
    )
