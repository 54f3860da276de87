"""The OpenAPI document documents every catalog route, with the error envelope, and has no warnings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

CATALOG_PATHS = {
    "/api/v1/models/",
    "/api/v1/models/{slug}/",
    "/api/v1/models/{slug}/versions/",
    "/api/v1/models/{slug}/versions/{version}/",
    "/api/v1/models/{slug}/lineage/",
    "/api/v1/models/{slug}/compare/",
    "/api/v1/models/{slug}/compliance/",
    "/api/v1/models/{slug}/offers/",  # served by consumption (it needs the offers' health)
    "/api/v1/models/{slug}/offers/{link_id}/",
    "/api/v1/datasets/",
    "/api/v1/datasets/{ref}/",
    "/api/v1/training-runs/",
    "/api/v1/training-runs/{id}/",
    "/api/v1/evaluations/",
    "/api/v1/evaluations/{id}/",
    "/api/v1/leaderboard/",
}
PREFIXES = (
    "/api/v1/models/",
    "/api/v1/datasets/",
    "/api/v1/training-runs/",
    "/api/v1/evaluations/",
    "/api/v1/leaderboard/",
)


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = Path(tmp_path_factory.mktemp("schema")) / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    return yaml.safe_load(out.read_text())


def test_the_schema_documents_every_catalog_route(schema: dict) -> None:
    assert {path for path in schema["paths"] if path.startswith(PREFIXES)} == CATALOG_PATHS


def test_every_catalog_operation_documents_its_errors_with_the_envelope(schema: dict) -> None:
    for path in CATALOG_PATHS:
        for method, operation in schema["paths"][path].items():
            errors = {code for code in operation["responses"] if code.startswith("4")}
            assert errors, f"{method.upper()} {path} documents no error"
            for code in errors:
                ref = operation["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                assert ref.endswith("/ErrorEnvelope"), (path, method, code)
