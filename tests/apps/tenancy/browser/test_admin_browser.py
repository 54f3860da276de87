"""Tenant A's admin in a real browser: logs in, sees only A's members, gets 404 for B's, opens the dashboard."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from apps.tenancy import quotas
from apps.tenancy.dashboard import DailyUsage, register_usage_provider, unregister_usage_provider
from apps.tenancy.models import Role, Tenant, Tier
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

ARTIFACTS = Path(settings.BASE_DIR) / "tests" / "artifacts"
WAIT_S = 10


def demo_rollups(tenant: Tenant, first: date, last: date) -> list[DailyUsage] | None:
    """Stands in for the consumption app's daily rollups: a steady week-shaped load on two services."""
    if tenant.slug != "acme":
        return None
    rows = []
    for offset in range((last - first).days + 1):
        day = first + timedelta(days=offset)
        weekday_factor = 1 if day.weekday() < 5 else 0.4
        chat = int((120 + 4 * offset) * weekday_factor)
        embed = int((60 + (offset % 7) * 9) * weekday_factor)
        rows.append(DailyUsage(day=day, requests=chat, spend=Decimal(chat) * Decimal("0.002"), service="acme/chat"))
        rows.append(DailyUsage(day=day, requests=embed, spend=Decimal(embed) * Decimal("0.0004"), service="acme/embed"))
    return rows


@pytest.fixture
def acme_and_globex(db: Any) -> dict[str, Any]:
    acme = TenantFactory(slug="acme", name="Acme Corp", tier=Tier.FREE)
    globex = TenantFactory(slug="globex", name="Globex Inc", tier=Tier.STARTER)
    admin_user = UserFactory(username="acme-admin")
    MembershipFactory(tenant=acme, user=admin_user, role=Role.ADMIN)
    MembershipFactory(tenant=acme, user=UserFactory(username="acme-dev"), role=Role.MEMBER)
    globex_member = MembershipFactory(tenant=globex, user=UserFactory(username="globex-dev"), role=Role.MEMBER)
    MembershipFactory(tenant=globex, user=UserFactory(username="globex-owner"), role=Role.OWNER)
    quotas.consume(acme, "api_requests", 7_200)
    quotas.consume(acme, "spend_usd", Decimal("8.60"))
    return {"acme": acme, "globex": globex, "admin": admin_user, "globex_member": globex_member}


def _wait(driver: Any, condition: Any) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition)


def _full_page_screenshot(driver: Any, path: Path) -> None:
    """Grow the window to the page's height so the screenshot holds the whole page."""
    height = driver.execute_script("return Math.max(document.body.scrollHeight, document.documentElement.scrollHeight)")
    metrics = {"width": 1400, "height": min(max(height, 600), 4000), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    try:
        driver.save_screenshot(str(path))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def _status_of(driver: Any, url: str) -> int:
    """The HTTP status of a same-origin GET made by the page (with its session cookie)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin', headers: {Accept: 'text/html'}})"
        ".then(r => done(r.status), () => done(-1));",
        url,
    )


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)  # tier rows come back via tests/conftest.py
def test_tenant_admin_in_a_real_browser(browser: Any, live_server: Any, acme_and_globex: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    register_usage_provider("test.demo_rollups", demo_rollups)
    try:
        # given tenant A's admin (not is_staff) at the admin login page
        browser.get(f"{live_server.url}{reverse('admin:login')}?next={reverse('admin:index')}")
        browser.find_element(By.ID, "id_username").send_keys("acme-admin")
        browser.find_element(By.ID, "id_password").send_keys("pw-for-tests-1")

        # when they log in
        browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

        # then the admin index answers, with the dashboard link
        _wait(browser, lambda d: d.find_elements(By.ID, "usage-dashboard-link"))
        assert not acme_and_globex["admin"].is_staff

        # and the members page lists A's members, none of B's
        browser.get(f"{live_server.url}{reverse('admin:tenancy_membership_changelist')}")
        _wait(browser, lambda d: d.find_elements(By.ID, "result_list"))
        listed = browser.find_element(By.ID, "result_list").text
        assert "acme-admin" in listed and "acme-dev" in listed
        assert "globex" not in browser.page_source
        _full_page_screenshot(browser, ARTIFACTS / "admin-members.png")

        # and B's member page is a 404
        b_url = reverse("admin:tenancy_membership_change", args=[acme_and_globex["globex_member"].pk])
        assert _status_of(browser, b_url) == 404
        browser.get(f"{live_server.url}{b_url}")
        assert "Not Found" in browser.page_source
        assert "globex-dev" not in browser.page_source

        # and the usage dashboard draws its charts with the vendored Chart.js and shows A's gauges
        browser.get(f"{live_server.url}{reverse('admin:usage_dashboard')}")
        _wait(browser, lambda d: d.execute_script("return document.documentElement.dataset.dashboardReady === '1'"))
        drawn = browser.execute_script(
            "return ['chart-requests', 'chart-spend', 'chart-services']"
            ".map(id => !!(window.Chart && Chart.getChart(document.getElementById(id))));"
        )
        assert drawn == [True, True, True]
        assert browser.execute_script("return Chart.version").startswith("4.")
        assert browser.find_element(By.ID, "dashboard-tenant").text == "acme"
        gauge = browser.find_element(By.ID, "gauge-api_requests").text
        assert "7200 / 10000" in gauge
        assert "warn" in browser.find_element(By.ID, "gauge-spend_usd").get_attribute("class")
        _full_page_screenshot(browser, ARTIFACTS / "admin-usage-dashboard.png")
    finally:
        unregister_usage_provider("test.demo_rollups")
    assert (ARTIFACTS / "admin-usage-dashboard.png").stat().st_size > 10_000
