"""Contract fuzzing of the publishing API: discovery, publishing, versions, status and the lifecycle actions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.support import World, fuzz

pytestmark = [pytest.mark.contract, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def test_publishing_operations_answer_as_documented(contract_world: World, subtests: Any) -> None:
    fuzz("publishing", contract_world, subtests)
