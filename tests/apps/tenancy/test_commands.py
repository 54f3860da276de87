"""The `create_tenant` management command."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.tenancy.models import AuditLog, Membership, Role, Tenant, TenantStatus
from tests.apps.tenancy.factories import TenantFactory, UserFactory


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("create_tenant", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_creates_a_tenant_with_its_owner_and_prints_slug_and_id() -> None:
    # given an existing user
    alice = UserFactory(username="alice")

    # when
    out, err = run("acme", "--name", "Acme Corp", "--tier", "starter", "--owner", "alice")

    # then the tenant exists, alice owns it, it was audited, and stdout names it
    tenant = Tenant.objects.get(slug="acme")
    assert (tenant.name, tenant.tier, tenant.status) == ("Acme Corp", "starter", TenantStatus.TRIAL)
    assert Membership.objects.get(tenant=tenant).user == alice
    assert Membership.objects.get(tenant=tenant).role == Role.OWNER
    assert out.strip().splitlines()[-1] == f"acme {tenant.pk}"
    assert "Created tenant acme" in err
    assert AuditLog.objects.filter(action="tenant_created", tenant=tenant).exists()


@pytest.mark.django_db
def test_defaults_name_to_the_slug_and_tier_to_the_configured_default() -> None:
    run("initech", "--trial-days", "0")

    tenant = Tenant.objects.get(slug="initech")
    assert (tenant.name, tenant.tier, tenant.status) == ("initech", "free", TenantStatus.ACTIVE)
    assert not Membership.objects.filter(tenant=tenant).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme", "--owner", "nobody"], "No user named 'nobody'"),
        (["acme", "--tier", "platinum"], "Unknown tier 'platinum'"),
        (["Not A Slug"], "slug: Use 3-63 lower-case letters"),
        (["admin"], "'admin' is reserved"),
        (["acme", "--timezone", "Mars/Olympus"], "timezone: Unknown time zone"),
        (["taken"], "already exists"),
    ],
)
def test_bad_input_is_a_clear_command_error_and_creates_nothing(args: list[str], message: str) -> None:
    TenantFactory(slug="taken")

    with pytest.raises(CommandError) as raised:
        run(*args)

    assert message in str(raised.value)
    assert Tenant.objects.count() == 1


def test_the_command_is_reachable_through_manage_py(db: Any) -> None:
    from django.core.management import get_commands

    assert get_commands()["create_tenant"] == "apps.tenancy"
