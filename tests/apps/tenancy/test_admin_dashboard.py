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
from django.utils import timezone

from apps.tenancy import dashboard, quotas
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
    assert data["spend"][-1] == "2.5"
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
    assert a_data["services"][1] == {"service": "acme/chat", "requests": 10, "spend": "1.25", "tokens": 300}
    assert b_data["source"] == "tenancy.quota_counters"  # the provider had nothing for B


def test_money_reaches_the_page_as_exact_decimal_text(tenants: dict[str, Any], no_providers: None) -> None:
    # given spends a float would blur (binary fractions, seventeen significant digits, exponents)
    def rollups(tenant: Tenant, first: date, last: date) -> list[DailyUsage]:
        return [
            DailyUsage(day=last, requests=1, spend=Decimal("0.0000405"), service="acme/echo"),
            DailyUsage(day=last - timedelta(days=1), requests=1, spend=Decimal("0.1"), service="acme/echo"),
            DailyUsage(day=first, requests=1, spend=Decimal("1234567.0000000001"), service="acme/big"),
        ]

    register_usage_provider("test.exact", rollups)
    try:
        # when
        data = dashboard_data(tenants["a"], today=TODAY)
    finally:
        unregister_usage_provider("test.exact")

    # then every amount is the ledger's decimal as text, without exponent or float artefacts
    assert data["spend"][-1] == "0.0000405" and data["spend"][-2] == "0.1" and data["spend"][0] == "1234567.0000000001"
    assert data["spend"][1] == "0"
    assert {s["service"]: s["spend"] for s in data["services"]} == {
        "acme/big": "1234567.0000000001",
        "acme/echo": "0.1000405",
    }
    assert data["totals_display"] == {"requests": "3", "spend": "1,234,567.1000405001", "tokens": "0"}


def test_reset_times_name_the_tenants_time_zone(tenants: dict[str, Any], no_providers: None) -> None:
    a = tenants["a"]
    a.timezone = "Asia/Tokyo"
    a.save()

    data = dashboard_data(a, today=TODAY)

    requests = next(g for g in data["gauges"] if g["quota_type"] == "api_requests")
    assert requests["resets_label"].endswith(" 00:00 Asia/Tokyo")
    assert requests["resets_at"].endswith("+09:00")


def test_gauge_numbers_are_exact_with_thousands_separators(tenants: dict[str, Any], no_providers: None) -> None:
    # given 7,200 of 10,000 requests and 10 of 1,000,000 tokens used this month (a free tenant)
    quotas.consume(tenants["a"], "api_requests", 7_200)
    quotas.consume(tenants["a"], "tokens", 10)

    data = dashboard_data(tenants["a"], today=TODAY)

    gauges = {g["quota_type"]: g for g in data["gauges"]}
    requests, tokens = gauges["api_requests"], gauges["tokens"]
    assert (requests["used"], requests["limit"]) == ("7200", "10000")  # machine-readable
    assert (requests["used_display"], requests["limit_display"], requests["percentage_display"]) == (
        "7,200",
        "10,000",
        "72.0",
    )
    # a use below the percentage's two decimals is not shown as none
    assert (tokens["percentage"], tokens["percentage_display"], tokens["in_use"]) == (0.0, "< 0.01", True)
    assert (gauges["services_published"]["percentage_display"], gauges["services_published"]["in_use"]) == (
        "0.0",
        False,
    )


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


def test_the_page_shows_grouped_numbers_zoned_reset_times_and_what_the_actions_do(
    tenants: dict[str, Any], no_providers: None
) -> None:
    # given a tenant in Tokyo with 1,234,567 requests this month
    a = tenants["a"]
    a.timezone = "Asia/Tokyo"
    a.save()
    _usage(a, "api_requests", timezone.now().astimezone(ZoneInfo("Asia/Tokyo")).date(), 1_234_567)
    start, end = quotas.period_bounds("month", a.timezone)
    QuotaUsage.objects.create(tenant=a, quota_type="api_requests", period_start=start, period_end=end, used=1_234_567)

    # when its admin opens the dashboard
    html = client_for(tenants["a_admin"]).get(reverse("admin:usage_dashboard")).content.decode()

    # then
    assert "<strong>1,234,567</strong> requests" in html
    gauge = re.search(r'id="gauge-api_requests".*?class="gauge-value">(.*?)</div>', html, re.S).group(1)  # type: ignore[union-attr]
    assert "1,234,567 / 10,000" in gauge and "Asia/Tokyo" in gauge
    explanation = re.search(r'id="quota-actions"[^>]*>(.*?)</p>', html, re.S).group(1)  # type: ignore[union-attr]
    assert all(word in explanation for word in ("block", "throttle", "alert", "402", "1/s"))


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
    assert dashboard.money(Decimal(amount)) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (0, "0"),
        (999, "999"),
        (1234567, "1,234,567"),
        ("1000.00", "1,000.00"),
        ("0.0000405", "0.0000405"),
        (Decimal("4.5E-7"), "0.00000045"),
        (Decimal("1E+6"), "1,000,000"),
        ("-1234.5", "-1,234.5"),
    ],
)
def test_grouped_numbers_keep_every_digit(value: Any, shown: str) -> None:
    assert dashboard.grouped(value) == shown
