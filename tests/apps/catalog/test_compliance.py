"""Provenance compliance: PII (GDPR/CCPA), health data (HIPAA), missing licenses, commercial-use conflicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from apps.catalog import selectors, services
from apps.catalog.compliance import check_compliance, license_allows_commercial_use
from apps.tenancy.models import Tenant


@dataclass
class Terms:
    name: str = "web-corpus"
    license: str = "cc-by-4.0"
    commercial_use: bool = True
    derivatives: bool = True
    pii_detected: bool = False
    pii_removed: bool = False
    contains_health_data: bool = False
    certifications: list[str] = field(default_factory=list)


@dataclass
class Model:
    license: str = "apache-2.0"
    commercial_use: bool = True


def codes(model: Model, *datasets: Terms) -> tuple[set[str], set[str]]:
    report = check_compliance(model, [(d.name, d) for d in datasets], "acme--m")
    return {f.code for f in report.violations}, {f.code for f in report.warnings}


def test_a_clean_provenance_is_compliant() -> None:
    report = check_compliance(Model(), [("d", Terms())], "acme--m")
    assert report.compliant and not report.warnings


def test_pii_detected_and_not_removed_breaks_gdpr_and_ccpa() -> None:
    assert codes(Model(), Terms(pii_detected=True))[0] == {"GDPR_PII_NOT_REMOVED", "CCPA_PII_NOT_REMOVED"}
    assert codes(Model(), Terms(pii_detected=True, pii_removed=True)) == (set(), set())


def test_health_data_needs_a_hipaa_certification() -> None:
    assert codes(Model(), Terms(contains_health_data=True))[0] == {"HIPAA_NOT_CERTIFIED"}
    assert codes(Model(), Terms(contains_health_data=True, certifications=["SOC2", "hipaa"])) == (set(), set())


def test_a_missing_license_is_a_warning_not_a_violation() -> None:
    violations, warnings = codes(Model(license=""), Terms(license=""))
    assert violations == set()
    assert warnings == {"MISSING_LICENSE"}


def test_commercial_use_of_the_model_conflicts_with_non_commercial_data() -> None:
    # given a dataset whose terms forbid commercial use
    data = Terms(license="cc-by-nc-4.0", commercial_use=False)

    # then a commercial model conflicts with it, a non-commercial one does not
    assert codes(Model(), data)[0] == {"COMMERCIAL_USE_CONFLICT"}
    assert codes(Model(license="cc-by-nc-4.0", commercial_use=False), data) == (set(), set())


def test_a_model_offered_commercially_under_a_non_commercial_license_conflicts() -> None:
    assert codes(Model(license="cc-by-nc-4.0", commercial_use=True))[0] == {"LICENSE_COMMERCIAL_CONFLICT"}


def test_no_derivatives_is_a_warning() -> None:
    assert codes(Model(), Terms(derivatives=False)) == (set(), {"DERIVATIVES_NOT_ALLOWED"})


@pytest.mark.parametrize(
    ("license_id", "allowed"), [("apache-2.0", True), ("MIT", True), ("cc-by-nc-4.0", False), ("custom-eula", None)]
)
def test_known_licenses_say_whether_commercial_use_is_allowed(license_id: str, allowed: bool | None) -> None:
    assert license_allows_commercial_use(license_id) is allowed


@pytest.mark.django_db
def test_a_models_datasets_come_from_its_lineage(acme: Tenant, alice: Any, make_model: Any, make_version: Any) -> None:
    # given a commercial model trained (through a run) on a cleaned dataset preprocessed from raw patient notes
    model = make_model(license="apache-2.0")
    version = make_version(model, "1.0.0")
    raw = services.create_dataset(
        owner=acme,
        actor=alice,
        slug="patient-notes",
        values={"name": "Patient notes", "pii_detected": True, "contains_health_data": True, "license": ""},
    )
    cleaned = services.create_dataset(
        owner=acme,
        actor=alice,
        slug="notes-clean",
        values={"name": "Notes (clean)", "license": "cc-by-nc-4.0", "pii_detected": True, "pii_removed": True},
    )
    services.create_dataset(
        owner=acme, actor=alice, slug="unrelated", values={"name": "Unrelated", "pii_detected": True}
    )
    services.add_lineage_edge(
        owner=acme,
        actor=alice,
        source={"kind": "dataset", "ref": "acme--notes-clean"},
        target={"kind": "dataset", "ref": "acme--patient-notes"},
        edge_type="preprocessed_by",
    )
    services.create_training_run(
        owner=acme, actor=alice, values={"name": "sft"}, datasets=[str(cleaned.pk)], model_version=str(version.pk)
    )

    # when
    report = selectors.model_compliance(model)

    # then the raw dataset's PII and health data, and the cleaned one's non-commercial license, are reported
    assert sorted(report.datasets) == ["acme--notes-clean", "acme--patient-notes"]
    assert {(f.code, f.dataset) for f in report.violations} == {
        ("GDPR_PII_NOT_REMOVED", "acme--patient-notes"),
        ("CCPA_PII_NOT_REMOVED", "acme--patient-notes"),
        ("HIPAA_NOT_CERTIFIED", "acme--patient-notes"),
        ("COMMERCIAL_USE_CONFLICT", "acme--notes-clean"),
        ("COMMERCIAL_USE_CONFLICT", "acme--patient-notes"),
    }
    assert ("MISSING_LICENSE", "acme--patient-notes") in {(f.code, f.dataset) for f in report.warnings}
    assert raw.commercial_use is False
