"""The newcomer documentation stays true: every option and environment variable is in the configuration reference,
every relative link of the README and docs/ points at a file, and the architecture page keeps its three diagrams."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apps.billing.conf import billing_settings
from apps.catalog.conf import catalog_settings
from apps.consumption.conf import consumption_settings
from apps.gateway.conf import gateway_settings
from apps.publishing.conf import publishing_settings
from apps.tenancy.conf import tenancy_settings
from llm_infra_django.conf import DEFAULTS

REPO = Path(__file__).resolve().parents[2]
REFERENCE = (REPO / "docs" / "configuration.md").read_text()
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ENV_READ = re.compile(
    r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']|os\.environ(?:\.get)?[\[(]\s*["']([A-Z][A-Z0-9_]+)"""
)


def section(name: str) -> str:
    start = REFERENCE.index(f"## `{name}`")
    end = REFERENCE.find("\n## ", start + 1)
    return REFERENCE[start : end if end > 0 else None]


@pytest.mark.parametrize(
    ("name", "defaults"),
    [
        ("LLM_INFRA", DEFAULTS),
        *[
            (s.setting_name, s.defaults)
            for s in (
                tenancy_settings,
                publishing_settings,
                catalog_settings,
                consumption_settings,
                gateway_settings,
                billing_settings,
            )
        ],
    ],
)
def test_every_option_is_documented_in_its_section(name: str, defaults: dict) -> None:
    text = section(name)
    missing = [key for key in defaults if f"`{key}`" not in text]
    assert not missing, f"docs/configuration.md, section {name}, lacks {missing}"


def test_every_environment_variable_the_settings_read_is_documented() -> None:
    names = set()
    for path in (REPO / "settings").glob("*.py"):
        names |= {a or b for a, b in ENV_READ.findall(path.read_text())}
    names -= {"PYTEST_XDIST_WORKER"}  # set by pytest-xdist, not by people
    missing = sorted(name for name in names if f"`{name}`" not in REFERENCE)
    assert not missing, f"docs/configuration.md lacks {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_point_at_files(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
        if "://" in target or target.startswith("mailto:"):
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to a missing {target}"


def test_the_architecture_page_has_its_diagrams() -> None:
    text = (REPO / "docs" / "architecture.md").read_text()
    diagrams = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert [d.split()[0] for d in diagrams] == ["flowchart", "flowchart", "sequenceDiagram"]
