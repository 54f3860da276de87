"""Schema rules (every code with its field path), SemVer, OpenAPI strict/lenient, built-in policy rules, SSRF."""

from __future__ import annotations

import socket
from decimal import Decimal

import pytest
from django.test import override_settings
from hypothesis import given
from hypothesis import strategies as st

from apps.publishing import validation
from apps.publishing.models import ServiceVersion
from apps.publishing.services import _build_version
from apps.publishing.versioning import VersionError, parse_version
from tests.apps.publishing.conftest import definition
from tests.apps.publishing.test_network import PRIVATE_IPV6, PUBLIC_IPV6

pytestmark = pytest.mark.django_db


def codes(issues) -> set[tuple[str, str]]:
    return {(issue.code, issue.field) for issue in issues}


def candidate(**overrides) -> ServiceVersion:
    return _build_version(None, overrides.pop("version", "1.0.0"), definition(**overrides))


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0-beta.1", "1.0.0+build.5", "", "one"])
def test_semver_refuses_anything_but_plain_versions(text: str) -> None:
    with pytest.raises(VersionError):
        parse_version(text)


@given(
    st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)),
    st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)),
)
def test_semver_order_is_numeric(a: tuple[int, int, int], b: tuple[int, int, int]) -> None:
    assert (parse_version(".".join(map(str, a))) < parse_version(".".join(map(str, b)))) == (a < b)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"protocol": "openai", "endpoint_url": ""}, ("MISSING_ENDPOINT", "endpoint.url")),
        ({"pricing_model": "free"}, ("INCONSISTENT_PRICING", "pricing.input_per_mtok")),
        ({"price_output_per_mtok": None}, ("MISSING_PRICING_RATES", "pricing.output_per_mtok")),
        (
            {"pricing_model": "per_request", "price_input_per_mtok": None, "price_output_per_mtok": None},
            ("MISSING_PRICING_RATES", "pricing.per_request"),
        ),
        (
            {"pricing_model": "per_request", "price_per_request": "0.01"},
            ("INCONSISTENT_PRICING", "pricing.input_per_mtok"),
        ),
        ({"price_cached_input_per_mtok": "0.60"}, ("INCONSISTENT_PRICING", "pricing.cached_input_per_mtok")),
        ({"price_input_per_mtok": "-1"}, ("INCONSISTENT_PRICING", "pricing.input_per_mtok")),
        ({"data_residency": ["US", "XX"]}, ("INVALID_COUNTRY_CODE", "compliance.data_residency[1]")),
        ({"data_residency": ["us"]}, ("INVALID_COUNTRY_CODE", "compliance.data_residency[0]")),
        ({"data_residency": ["FR"]}, ("GDPR_REQUIRED", "compliance.gdpr")),
        ({"description": "x" * 600_000}, ("SERVICE_TOO_LARGE", "")),
    ],
)
def test_schema_rules(overrides: dict, expected: tuple[str, str]) -> None:
    assert expected in codes(validation.schema_issues(candidate(**overrides)))


def test_a_valid_definition_has_no_schema_issue() -> None:
    assert validation.schema_issues(candidate()) == []
    assert validation.schema_issues(candidate(data_residency=["FR", "DE"], gdpr_compliant=True)) == []


def test_version_not_incremented_against_stored_versions(publisher, publisher_admin) -> None:
    from apps.publishing import services

    service, _, _ = services.publish_service(
        publisher=publisher, actor=publisher_admin, slug="echo", version="1.2.0", values=definition()
    )
    newer = _build_version(service, "1.1.9", definition())
    assert ("VERSION_NOT_INCREMENTED", "version") in codes(validation.version_issues(newer))
    assert list(validation.version_issues(_build_version(service, "1.2.1", definition()))) == []


@override_settings(MARKETPLACE_PUBLISHING={"REQUIRE_HTTPS": True, "ALLOW_PRIVATE_ENDPOINTS": False})
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/v1",
        "https://10.0.0.1/v1",
        "https://169.254.169.254/latest",
        "https://[::1]/v1",
        "https://localhost/v1",
        "https://100.64.0.7/v1",
    ],
)
def test_production_refuses_private_endpoints(url: str) -> None:
    issues = codes(validation.schema_issues(candidate(protocol="openai", endpoint_url=url)))
    assert ("PRIVATE_ENDPOINT", "endpoint.url") in issues
    if url.startswith("http://"):
        assert ("INSECURE_ENDPOINT", "endpoint.url") in issues


@override_settings(MARKETPLACE_PUBLISHING={"REQUIRE_HTTPS": True, "ALLOW_PRIVATE_ENDPOINTS": False})
@pytest.mark.parametrize("address", PRIVATE_IPV6.values(), ids=PRIVATE_IPV6.keys())
def test_validation_refuses_ipv6_forms_of_private_space(address: str) -> None:
    issues = codes(validation.schema_issues(candidate(protocol="openai", endpoint_url=f"https://[{address}]/v1")))
    assert ("PRIVATE_ENDPOINT", "endpoint.url") in issues


@override_settings(MARKETPLACE_PUBLISHING={"REQUIRE_HTTPS": True, "ALLOW_PRIVATE_ENDPOINTS": False})
@pytest.mark.parametrize("address", PUBLIC_IPV6.values(), ids=PUBLIC_IPV6.keys())
def test_validation_accepts_ipv6_forms_of_public_addresses(address: str) -> None:
    issues = codes(validation.schema_issues(candidate(protocol="openai", endpoint_url=f"https://[{address}]/v1")))
    assert ("PRIVATE_ENDPOINT", "endpoint.url") not in issues


@override_settings(MARKETPLACE_PUBLISHING={"REQUIRE_HTTPS": True, "ALLOW_PRIVATE_ENDPOINTS": False})
def test_production_refuses_a_hostname_resolving_to_loopback() -> None:
    # the machine's own hostname resolves, through /etc/hosts, to a loopback or private address
    host = socket.gethostname()
    from apps.publishing.network import _is_forbidden, resolve_addresses

    try:
        addresses = resolve_addresses(host)
    except OSError:
        pytest.skip(f"{host} does not resolve here")
    if not any(_is_forbidden(a) for a in addresses):
        pytest.skip(f"{host} resolves to a public address here")
    issues = codes(validation.schema_issues(candidate(protocol="openai", endpoint_url=f"https://{host}/v1")))
    assert ("PRIVATE_ENDPOINT", "endpoint.url") in issues


def test_development_allows_local_endpoints() -> None:
    assert validation.schema_issues(candidate(protocol="openai", endpoint_url="http://127.0.0.1:11434/v1")) == []


OPENAPI_OK = {
    "openapi": "3.0.3",
    "info": {"title": "Echo", "version": "1.0.0"},
    "paths": {"/chat": {"post": {"responses": {"200": {"description": "ok"}}}}},
}


def test_openapi_invalid_document_is_an_error_with_its_path() -> None:
    issues = validation.openapi_issues({"openapi": "3.0.3", "info": {"title": "x"}, "paths": {}})
    assert [(i.code, i.field, i.severity) for i in issues] == [("INVALID_OPENAPI", "openapi.info", "error")]


def test_openapi_lint_findings_are_warnings_unless_strict() -> None:
    lenient = validation.openapi_issues(OPENAPI_OK, strict=False)
    strict = validation.openapi_issues(OPENAPI_OK, strict=True)
    assert {i.code for i in lenient} == {"OPENAPI_NO_DESCRIPTION", "OPENAPI_NO_SERVERS", "OPENAPI_NO_OPERATION_ID"}
    assert {i.severity for i in lenient} == {"warning"}
    assert {i.severity for i in strict} == {"error"}
    assert validation.openapi_issues(None) == []


@pytest.mark.parametrize(
    ("overrides", "code", "severity"),
    [
        ({"data_residency": []}, "RESIDENCY_REQUIRED", "high"),
        ({"data_residency": ["US", "IR"]}, "SANCTIONED_RESIDENCY", "critical"),
        ({"compliance_level": "confidential"}, "CERTIFICATION_REQUIRED", "high"),
        ({"compliance_level": "restricted"}, "CERTIFICATION_REQUIRED", "high"),
        ({"support_level": "enterprise", "sla_availability": Decimal("99.5")}, "SLA_TOO_LOW", "medium"),
    ],
)
def test_builtin_policy_rules(overrides: dict, code: str, severity: str) -> None:
    found = validation.builtin_policy_violations(candidate(**overrides))
    assert (code, severity) in {(v.code, v.severity) for v in found}


@override_settings(MARKETPLACE_PUBLISHING={"REQUIRE_HTTPS": True})
def test_builtin_policy_refuses_plain_http_in_production() -> None:
    found = validation.builtin_policy_violations(candidate(protocol="openai", endpoint_url="http://api.example.com"))
    assert ("INSECURE_ENDPOINT", "critical") in {(v.code, v.severity) for v in found}


def test_builtin_policy_passes_a_clean_service() -> None:
    assert validation.builtin_policy_violations(candidate(support_level="enterprise", sla_availability="99.95")) == []


def test_approval_needed_for_sensitive_or_untrusted() -> None:
    assert not validation.needs_approval(candidate(), publisher_trusted=True)
    assert validation.needs_approval(candidate(), publisher_trusted=False)
    assert validation.needs_approval(
        candidate(compliance_level="confidential", certifications=["SOC2"]), publisher_trusted=True
    )
    assert validation.needs_approval(candidate(support_level="enterprise"), publisher_trusted=True)
