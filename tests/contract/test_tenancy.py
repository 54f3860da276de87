"""Contract fuzzing of the tenancy API: tenants, members, quotas, usage, audit log, sharing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract.support import World, fuzz

pytestmark = [pytest.mark.contract, pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]


def test_tenancy_operations_answer_as_documented(contract_world: World, subtests: Any) -> None:
    fuzz("tenancy", contract_world, subtests)
