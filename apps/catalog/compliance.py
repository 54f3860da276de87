"""Provenance compliance rules: PII (GDPR/CCPA), health data (HIPAA), licenses and commercial-use conflicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# Known licenses and whether they allow commercial use (lower-case SPDX-style ids); others are unknown (None).
COMMERCIAL_LICENSES = frozenset(
    {
        "apache-2.0",
        "mit",
        "bsd-2-clause",
        "bsd-3-clause",
        "isc",
        "mpl-2.0",
        "gpl-2.0",
        "gpl-3.0",
        "lgpl-3.0",
        "agpl-3.0",
        "unlicense",
        "cc0-1.0",
        "cc-by-4.0",
        "cc-by-sa-4.0",
        "odc-by",
        "odbl",
        "pddl",
        "openrail",
        "openrail-m",
        "bigscience-openrail-m",
        "creativeml-openrail-m",
        "llama2",
        "llama3",
        "llama3.1",
        "llama3.2",
        "gemma",
    }
)
NON_COMMERCIAL_LICENSES = frozenset(
    {
        "cc-by-nc-2.0",
        "cc-by-nc-3.0",
        "cc-by-nc-4.0",
        "cc-by-nc-sa-3.0",
        "cc-by-nc-sa-4.0",
        "cc-by-nc-nd-3.0",
        "cc-by-nc-nd-4.0",
        "research-only",
        "non-commercial",
    }
)


def license_allows_commercial_use(license_id: str) -> bool | None:
    """True/False for a known license, None for an unknown or missing one."""
    key = (license_id or "").strip().lower()
    if key in COMMERCIAL_LICENSES:
        return True
    if key in NON_COMMERCIAL_LICENSES:
        return False
    return None


class ModelTerms(Protocol):
    license: str
    commercial_use: bool


class DatasetTerms(Protocol):
    name: str
    license: str
    commercial_use: bool
    derivatives: bool
    pii_detected: bool
    pii_removed: bool
    contains_health_data: bool
    certifications: list[str]


@dataclass(frozen=True)
class Finding:
    """One rule broken: a stable code, its regulation or area, severity, message, and the dataset concerned."""

    code: str
    regulation: str
    severity: str
    message: str
    dataset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ComplianceReport:
    """Violations make the model non-compliant; warnings do not."""

    model: str
    datasets: list[str] = field(default_factory=list)
    violations: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def compliant(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "compliant": self.compliant,
            "datasets": self.datasets,
            "violations": [f.as_dict() for f in self.violations],
            "warnings": [f.as_dict() for f in self.warnings],
        }


def model_findings(model: ModelTerms) -> list[Finding]:
    """Rules on the model's own license."""
    found: list[Finding] = []
    if not model.license:
        found.append(Finding("MISSING_LICENSE", "license", "warning", "The model declares no license."))
    elif model.commercial_use and license_allows_commercial_use(model.license) is False:
        found.append(
            Finding(
                "LICENSE_COMMERCIAL_CONFLICT",
                "license",
                "high",
                f"The model is offered for commercial use but its license {model.license} forbids it.",
            )
        )
    return found


def dataset_findings(model: ModelTerms, dataset: DatasetTerms, label: str | None = None) -> list[Finding]:
    """Rules on one dataset the model was trained on (directly or through its lineage)."""
    name = label or dataset.name
    found: list[Finding] = []
    if dataset.pii_detected and not dataset.pii_removed:
        for regulation in ("GDPR", "CCPA"):
            found.append(
                Finding(
                    f"{regulation}_PII_NOT_REMOVED",
                    regulation,
                    "high",
                    f"Personal data was detected in dataset {name} and not removed.",
                    name,
                )
            )
    if dataset.contains_health_data and "HIPAA" not in {c.upper() for c in dataset.certifications or []}:
        found.append(
            Finding(
                "HIPAA_NOT_CERTIFIED",
                "HIPAA",
                "critical",
                f"Dataset {name} holds health data without a HIPAA certification.",
                name,
            )
        )
    if not dataset.license:
        found.append(Finding("MISSING_LICENSE", "license", "warning", f"Dataset {name} declares no license.", name))
    if model.commercial_use and not dataset.commercial_use:
        found.append(
            Finding(
                "COMMERCIAL_USE_CONFLICT",
                "license",
                "high",
                f"The model is offered for commercial use but dataset {name}'s terms do not allow commercial use.",
                name,
            )
        )
    if not dataset.derivatives:
        found.append(
            Finding(
                "DERIVATIVES_NOT_ALLOWED",
                "license",
                "warning",
                f"Dataset {name}'s terms do not allow derivative works; check that training on it is permitted.",
                name,
            )
        )
    return found


def check_compliance(model: ModelTerms, datasets: Iterable[tuple[str, DatasetTerms]], name: str) -> ComplianceReport:
    """The report of a model over its datasets (`(label, dataset)` pairs)."""
    report = ComplianceReport(model=name)
    findings = model_findings(model)
    for label, dataset in datasets:
        report.datasets.append(label)
        findings += dataset_findings(model, dataset, label)
    for finding in findings:
        (report.warnings if finding.severity == "warning" else report.violations).append(finding)
    return report
