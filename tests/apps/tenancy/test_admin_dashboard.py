"""The usage dashboard: its data function, the provider hook, and the admin page (scoped, offline)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse

from apps.tenancy import dashboard
from apps.tenancy.dashboard import DailyUsage, dashboard_data, register_usage_provider, unregister_usage_provider
from apps.tenancy.models import QuotaUsage, Role, Tenant
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

TODAY = date(2026, 3, 31)


@pytest.fixture
def tenants(db: Any) -> dict[str, Any]:
    a = TenantFactory(slug="acme", name="Acme Corp")
    b = TenantFactory(slug="globex", name="Globex Inc")
    a_admin, b_admin = UserFactory(username="a-admin"), UserFactory(username="b-admin")
    MembershipFactory(tenant=a, user=a_admin, role=Role.ADMIN)
    MembershipFactory(tenant=a, user=UserFactory(username="a-member"), role=Role.MEMBER)
    MembershipFactory(tenant=b, user=b_admin, role=Role.OWNER)
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    return {"a": a, "b": b, "a_admin": a_admin, "b_admin": b_admin, "root": root}


@pytest.fixture
def no_providers() -> Iterator[None]:
    saved = dict(dashboard._usage_providers)
    dashboard._usage_providers.clear()
    yield
    dashboard._usage_providers.clear()
    dashboard._usage_providers.update(saved)


def _usage(tenant: Tenant, quota_type: str, day: date, used: int, hours: int = 24) -> None:
    start = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(tenant.timezone))
    QuotaUsage.objects.create(
        tenant=tenant, quota_type=quota_type, period_start=start, period_end=start + timedelta(hours=hours), used=used
    )


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- dashboard_data -----------------------------------------------------------------------------------------


def test_daily_counters_give_thirty_days_of_requests_and_spend(tenants: dict[str, Any], no_providers: None) -> None:
    # given daily counters on two days of the window, one before it, and a monthly counter (not splittable)
    a = tenants["a"]
    _usage(a, "api_requests", TODAY, 7)
    _usage(a, "api_requests", TODAY - timedelta(days=29), 5)
    _usage(a, "api_requests", TODAY - timedelta(days=30), 1000)
    _usage(a, "spend_usd", TODAY, 25_000_000_000)  # 10⁻¹⁰ USD
    _usage(a, "tokens", TODAY - timedelta(days=29), 99999, hours=24 * 31)

    # when
    data = dashboard_data(a, today=TODAY)

    # then
    assert len(data["days"]) == 30
    assert data["days"][0] == "2026-03-02" and data["days"][-1] == "2026-03-31"
    assert data["requests"][0] == 5 and data["requests"][-1] == 7
    assert sum(data["requests"]) == 12
    assert data["spend"][-1] == 2.5
    assert data["totals"] == {"requests": 12, "spend": "2.50", "tokens": 0}
    assert data["services"] == []
    assert data["source"] == "tenancy.quota_counters"


def test_days_follow_the_tenants_time_zone(tenants: dict[str, Any], no_providers: None) -> None:
    a = tenants["a"]
    a.timezone = "Asia/Tokyo"
    a.save()
    _usage(a, "api_requests", TODAY, 3)  # midnight in Tokyo is the previous day in UTC

    data = dashboard_data(a, today=TODAY)

    assert data["requests"][-1] == 3


def test_gauges_show_every_quota_with_the_soft_limit_line(tenants: dict[str, Any], no_providers: None) -> None:
    data = dashboard_data(tenants["a"], today=TODAY)

    gauges = {g["quota_type"]: g for g in data["gauges"]}
    assert set(gauges) == {"api_requests", "tokens", "spend_usd", "members", "services_published", "api_keys"}
    members = gauges["members"]
    assert (members["used"], members["limit"], members["unlimited"]) == ("2", "3", False)
    assert members["percentage"] == pytest.approx(66.67)
    assert members["soft_limit_reached"] is False
    assert data["soft_limit_percent"] == 80.0


def test_a_registered_provider_replaces_the_counters_and_gives_per_service_data(
    tenants: dict[str, Any], no_providers: None
) -> None:
    seen: list[tuple[str, date, date]] = []

    def rollups(tenant: Tenant, first: date, last: date) -> list[DailyUsage] | None:
        seen.append((tenant.slug, first, last))
        if tenant.slug != "acme":
            return None
        return [
            DailyUsage(day=last, requests=10, spend=Decimal("1.25"), tokens=300, service="acme/chat"),
            DailyUsage(day=last, requests=4, spend=Decimal("3.00"), tokens=90, service="acme/embed"),
            DailyUsage(day=first - timedelta(days=1), requests=999, service="acme/chat"),  # outside: ignored
        ]

    register_usage_provider("consumption.rollups", rollups)
    try:
        a_data = dashboard_data(tenants["a"], today=TODAY)
        b_data = dashboard_data(tenants["b"], today=TODAY)
    finally:
        unregister_usage_provider("consumption.rollups")

    assert seen[0] == ("acme", date(2026, 3, 2), TODAY)
    assert a_data["source"] == "consumption.rollups"
    assert a_data["requests"][-1] == 14 and a_data["tokens"][-1] == 390
    assert [s["service"] for s in a_data["services"]] == ["acme/embed", "acme/chat"]  # by spend
    assert a_data["services"][1] == {"service": "acme/chat", "requests": 10, "spend": 1.25, "tokens": 300}
    assert b_data["source"] == "tenancy.quota_counters"  # the provider had nothing for B


# --- The page -----------------------------------------------------------------------------------------------


def test_the_dashboard_renders_the_tenants_charts_and_gauges(tenants: dict[str, Any]) -> None:
    response = client_for(tenants["a_admin"]).get(reverse("admin:usage_dashboard"))

    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="dashboard-tenant">acme<' in html
    assert 'id="chart-requests"' in html and 'id="chart-spend"' in html
    assert 'id="gauge-members"' in html and "2 / 3" in html
    assert 'class="gauge-soft-line" style="left: 80.00%"' in html
    assert 'id="dashboard-data"' in html
    assert "globex" not in html


def test_the_dashboard_loads_no_script_or_style_from_another_host(tenants: dict[str, Any]) -> None:
    html = client_for(tenants["a_admin"]).get(reverse("admin:usage_dashboard")).content.decode()

    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', html)
    assert sources, "the page loads its assets"
    assert all(src.startswith("/") and not src.startswith("//") for src in sources), sources
    assert "cdn" not in html.lower()
    assert "/static/tenancy/vendor/chart.umd.min.js" in sources


def test_the_vendored_chart_library_is_a_static_file() -> None:
    path = finders.find("tenancy/vendor/chart.umd.min.js")

    assert path is not None
    with open(path, encoding="utf-8") as handle:
        assert "Chart.js v4" in handle.read(200)


def test_a_tenant_admin_cannot_open_another_tenants_dashboard(tenants: dict[str, Any]) -> None:
    response = client_for(tenants["a_admin"]).get(reverse("admin:usage_dashboard"), {"tenant": "globex"})

    assert response.status_code == 404


def test_a_superuser_picks_any_tenant(tenants: dict[str, Any]) -> None:
    client = client_for(tenants["root"])

    first = client.get(reverse("admin:usage_dashboard"))
    picked = client.get(reverse("admin:usage_dashboard"), {"tenant": "globex"})

    assert 'id="tenant-picker"' in first.content.decode()
    assert first.context["tenant"].slug == "acme"
    assert picked.context["tenant"].slug == "globex"
    assert '<option value="globex" selected>' in picked.content.decode()


def test_the_dashboard_needs_an_admin_login(tenants: dict[str, Any]) -> None:
    member = UserFactory(username="just-a-member")
    MembershipFactory(tenant=tenants["a"], user=member, role=Role.MEMBER)

    anonymous = Client().get(reverse("admin:usage_dashboard"))
    plain_member = client_for(member).get(reverse("admin:usage_dashboard"))

    assert anonymous.status_code == 302 and reverse("admin:login") in anonymous["Location"]
    assert plain_member.status_code == 302


def test_the_admin_index_links_to_the_dashboard(tenants: dict[str, Any]) -> None:
    html = client_for(tenants["a_admin"]).get(reverse("admin:index")).content.decode()

    assert f'href="{reverse("admin:usage_dashboard")}"' in html


@pytest.mark.parametrize(
    ("amount", "shown"),
    [("2.5", "2.50"), ("0", "0.00"), ("0.0000320000", "0.000032"), ("12.345", "12.345"), ("1000", "1000.00")],
)
def test_spend_keeps_cents_and_shows_small_amounts(amount: str, shown: str) -> None:
    from decimal import Decimal

    from apps.tenancy.dashboard import money

    assert money(Decimal(amount)) == shown
