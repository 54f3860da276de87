"""Fixtures of the tenancy tests."""

from __future__ import annotations

import pytest

from apps.tenancy import quotas
from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_counters():
    """Per-process quota counters never leak between tests (Redis keys hold the tenant's fresh UUID)."""
    quotas.local_counters.clear()
    yield
    quotas.local_counters.clear()


@pytest.fixture
def owner(db):
    return UserFactory(username="alice")


@pytest.fixture
def tenant(owner):
    t = TenantFactory(slug="acme")
    MembershipFactory(tenant=t, user=owner, role=Role.OWNER)
    return t


@pytest.fixture
def staff(db):
    return UserFactory(username="operator", is_staff=True, is_superuser=True)
