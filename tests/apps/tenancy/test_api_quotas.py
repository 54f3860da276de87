"""REST API of quotas (status and staff overrides), usage of the current period, and the read-only audit log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.tenancy import quotas, services
from apps.tenancy.models import AuditLog, QuotaAction, QuotaOverride, QuotaType
from tests.apps.tenancy.api_support import API, World, assert_error, build_world, client_for, unregister_widgets

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> Iterator[World]:
    yield build_world()
    unregister_widgets()


def _rows(response) -> dict[str, dict]:
    return {row["quota_type"]: row for row in response.json()}


# --- Quotas --------------------------------------------------------------------------------------------------


def test_any_member_reads_every_quota_with_usage(world: World) -> None:
    # when
    response = client_for(world.viewer).get(f"{API}/tenants/acme/quotas/")

    # then
    assert response.status_code == 200
    rows = _rows(response)
    assert set(rows) == set(QuotaType.values)
    assert rows["api_requests"]["limit"] == "1000000"
    assert rows["api_requests"]["action"] == QuotaAction.ALERT
    assert rows["api_requests"]["period"] == "month"
    assert rows["api_requests"]["resets_at"] is not None
    assert rows["members"] == {
        "quota_type": "members",
        "period": "none",
        "limit": "50",
        "action": QuotaAction.ALERT,
        "used": "4",
        "remaining": "46",
        "percentage": 8.0,
        "resets_at": None,
        "soft_limit_reached": False,
    }


def test_one_quota_and_an_unknown_one(world: World) -> None:
    # given
    client = client_for(world.member)

    # when
    found = client.get(f"{API}/tenants/acme/quotas/tokens/")
    missing = client.get(f"{API}/tenants/acme/quotas/bananas/")

    # then
    assert found.status_code == 200
    assert found.json()["limit"] == "200000000"
    assert_error(missing, 404, "not_found")


def test_staff_override_a_quota_and_the_status_follows(world: World) -> None:
    # when
    response = client_for(world.staff).put(
        f"{API}/tenants/acme/quotas/api_requests/", {"limit": "500", "action": QuotaAction.BLOCK}, format="json"
    )

    # then
    assert response.status_code == 200, response.content
    assert response.json()["limit"] == "500"
    assert response.json()["action"] == QuotaAction.BLOCK
    override = QuotaOverride.objects.get(tenant=world.acme, quota_type="api_requests")
    assert override.limit == Decimal(500)
    listed = _rows(client_for(world.viewer).get(f"{API}/tenants/acme/quotas/"))
    assert listed["api_requests"]["limit"] == "500"
    assert AuditLog.objects.filter(tenant=world.acme, action="quota_override_set").exists()


def test_an_override_can_make_a_quota_unlimited(world: World) -> None:
    # when
    response = client_for(world.staff).put(f"{API}/tenants/acme/quotas/tokens/", {"limit": -1}, format="json")

    # then
    assert response.status_code == 200
    assert response.json()["limit"] == "-1"
    assert response.json()["remaining"] is None and response.json()["percentage"] is None


def test_staff_clear_an_override(world: World) -> None:
    # given
    services.set_quota_override(tenant=world.acme, quota_type="tokens", limit=10, actor=world.staff)
    client = client_for(world.staff)

    # when
    cleared = client.delete(f"{API}/tenants/acme/quotas/tokens/")
    again = client.delete(f"{API}/tenants/acme/quotas/tokens/")

    # then
    assert cleared.status_code == 204
    assert not QuotaOverride.objects.filter(tenant=world.acme).exists()
    assert_error(again, 404, "not_found")


@pytest.mark.parametrize("method", ["put", "delete"])
@pytest.mark.parametrize("role", ["owner", "admin", "viewer"])
def test_tenant_members_cannot_override_quotas(world: World, method: str, role: str) -> None:
    # when
    response = getattr(client_for(getattr(world, role)), method)(
        f"{API}/tenants/acme/quotas/tokens/", {"limit": 1}, format="json"
    )

    # then
    assert_error(response, 403)
    assert not QuotaOverride.objects.exists()


@pytest.mark.parametrize(
    ("url_type", "payload", "field"),
    [
        ("tokens", {"limit": "-5"}, "limit"),
        ("tokens", {"limit": "lots"}, "limit"),
        ("tokens", {"limit": "NaN"}, "limit"),
        ("tokens", {"limit": "1e30"}, "limit"),
        ("tokens", {"limit": "0.0000001"}, "limit"),
        ("tokens", {}, "limit"),
        ("tokens", {"limit": 1, "action": "explode"}, "action"),
        ("tokens", {"limit": 1, "period": "day"}, "period"),
        ("bananas", {"limit": 1}, "quota_type"),
    ],
)
def test_overrides_refuse_bad_input_naming_the_field(world: World, url_type: str, payload: dict, field: str) -> None:
    # when
    response = client_for(world.staff).put(f"{API}/tenants/acme/quotas/{url_type}/", payload, format="json")

    # then
    assert_error(response, 400, "validation_error", field=field)
    assert not QuotaOverride.objects.exists()


# --- Usage ---------------------------------------------------------------------------------------------------


def test_usage_shows_the_metered_quotas_of_the_current_period(world: World) -> None:
    # given
    quotas.consume(world.acme, QuotaType.API_REQUESTS, 3)
    quotas.consume(world.acme, QuotaType.SPEND_USD, Decimal("1.25"))
    quotas.consume(world.globex, QuotaType.API_REQUESTS, 7)

    # when
    response = client_for(world.viewer).get(f"{API}/tenants/acme/usage/")

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["tenant"], body["timezone"]) == ("acme", "UTC")
    rows = {row["quota_type"]: row for row in body["quotas"]}
    assert set(rows) == {"api_requests", "tokens", "spend_usd"}
    assert rows["api_requests"]["used"] == "3"
    assert rows["spend_usd"]["used"] == "1.25"
    assert rows["tokens"]["used"] == "0"
    start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    assert rows["api_requests"]["period_start"] == start.isoformat().replace("+00:00", "Z")


def test_usage_periods_follow_the_tenants_time_zone(world: World) -> None:
    # given
    services.update_tenant(tenant=world.acme, actor=world.owner, timezone="Asia/Tokyo")

    # when
    response = client_for(world.member).get(f"{API}/tenants/acme/usage/")

    # then
    row = response.json()["quotas"][0]
    assert row["period_start"].endswith("T15:00:00Z")  # local midnight of the 1st in Tokyo (UTC+9)


# --- Audit log -----------------------------------------------------------------------------------------------


def test_admins_read_the_audit_log_newest_first(world: World) -> None:
    # given
    services.update_tenant(tenant=world.acme, actor=world.owner, name="Acme Corp")

    # when
    response = client_for(world.admin).get(f"{API}/tenants/acme/audit-log/")

    # then
    assert response.status_code == 200
    rows = response.json()["results"]
    assert rows[0]["action"] == "tenant_updated"
    assert rows[0]["actor"] == "alice"
    assert rows[0]["before"] == {"name": "Acme"} and rows[0]["after"] == {"name": "Acme Corp"}
    assert response.json()["count"] == AuditLog.objects.filter(tenant=world.acme).count()


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_below_admin_cannot_read_the_audit_log(world: World, role: str) -> None:
    # when
    response = client_for(getattr(world, role)).get(f"{API}/tenants/acme/audit-log/")

    # then
    assert_error(response, 403)


def test_the_audit_log_filters_by_action_object_type_and_time(world: World) -> None:
    # given
    services.update_tenant(tenant=world.acme, actor=world.owner, name="Acme Corp")
    client = client_for(world.owner)
    now = timezone.now()

    # when
    by_action = client.get(f"{API}/tenants/acme/audit-log/", {"action": "tenant_updated"})
    by_type = client.get(f"{API}/tenants/acme/audit-log/", {"object_type": "tenancy.sharingpolicy"})
    future = client.get(f"{API}/tenants/acme/audit-log/", {"since": (now + timedelta(hours=1)).isoformat()})
    past = client.get(f"{API}/tenants/acme/audit-log/", {"until": (now - timedelta(hours=1)).isoformat()})
    window = client.get(
        f"{API}/tenants/acme/audit-log/",
        {"since": (now - timedelta(hours=1)).isoformat(), "until": (now + timedelta(hours=1)).isoformat()},
    )

    # then
    assert [row["action"] for row in by_action.json()["results"]] == ["tenant_updated"]
    assert {row["action"] for row in by_type.json()["results"]} == {"sharing_policy_created"}
    assert by_type.json()["count"] == 3
    assert future.json()["count"] == 0 and past.json()["count"] == 0
    assert window.json()["count"] == AuditLog.objects.filter(tenant=world.acme).count()


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("value", ["yesterday", "0001-01-01T00:00:00+01:00"])  # the second is before year 1 in UTC
def test_the_audit_log_refuses_a_bad_time_naming_the_parameter(world: World, param: str, value: str) -> None:
    # when
    response = client_for(world.owner).get(f"{API}/tenants/acme/audit-log/", {param: value})

    # then
    assert_error(response, 400, "validation_error", field=param)


def test_the_audit_log_compares_times_of_any_offset_in_utc(world: World) -> None:
    # given: an offset Python accepts but PostgreSQL refuses (±15:59 at most): the contract fuzzer's 500
    client = client_for(world.owner)
    tomorrow = (timezone.now() + timedelta(days=1)).replace(microsecond=0)
    far_east = tomorrow.astimezone(dt_timezone(timedelta(hours=22, minutes=31))).isoformat()

    # when
    since = client.get(f"{API}/tenants/acme/audit-log/", {"since": far_east})
    until = client.get(f"{API}/tenants/acme/audit-log/", {"until": far_east})

    # then
    assert since.status_code == 200 and since.json()["count"] == 0
    assert until.status_code == 200 and until.json()["count"] == AuditLog.objects.filter(tenant=world.acme).count()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_the_audit_log_has_no_write_method(world: World, method: str) -> None:
    # given
    before = AuditLog.objects.count()

    # when
    response = getattr(client_for(world.owner), method)(
        f"{API}/tenants/acme/audit-log/", {"action": "forged"}, format="json"
    )

    # then
    assert_error(response, 405, "method_not_allowed")
    assert AuditLog.objects.count() == before
