"""Fixtures of the tenancy tests."""

from __future__ import annotations

import pytest

from apps.tenancy.models import Role
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory


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
