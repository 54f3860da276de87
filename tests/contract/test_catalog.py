"""Contract fuzzing of the catalog API: models, versions, lineage, datasets, training runs, evaluations,
leaderboard."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.support import World, fuzz

pytestmark = [pytest.mark.contract, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def test_catalog_operations_answer_as_documented(contract_world: World, subtests: Any) -> None:
    fuzz("catalog", contract_world, subtests)
