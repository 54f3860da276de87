"""Contract fuzzing of the consumption API (API keys, usage, quota), and the check that every operation of the schema
is fuzzed by one of the contract modules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.support import GROUPS, World, fuzz, operations

pytestmark = [pytest.mark.contract, pytest.mark.timeout(900)]


@pytest.mark.django_db(transaction=True)
def test_consumption_operations_answer_as_documented(contract_world: World, subtests: Any) -> None:
    fuzz("consumption", contract_world, subtests)


def test_every_operation_of_the_schema_is_fuzzed() -> None:
    # given
    every = {operation.label for operation in operations([""])}

    # when
    fuzzed = {operation.label for prefixes in GROUPS.values() for operation in operations(prefixes)}

    # then
    assert len(every) >= 79
    assert every == fuzzed
