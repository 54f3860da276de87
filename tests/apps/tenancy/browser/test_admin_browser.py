"""Tenant A's admin in a real browser: logs in, sees only A's members, gets 404 for B's, opens the dashboard."""

from __future__ import annotations

import re
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


def _log_in(driver: Any, live_server: Any, username: str, next_url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{live_server.url}{reverse('admin:login')}?next={next_url}")
    driver.find_element(By.ID, "id_username").send_keys(username)
    driver.find_element(By.ID, "id_password").send_keys("pw-for-tests-1")
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()


def _open_dashboard(driver: Any) -> None:
    _wait(driver, lambda d: d.execute_script("return document.documentElement.dataset.dashboardReady === '1'"))


def _tick_labels(driver: Any, canvas_id: str, axis: str) -> list[str]:
    """The labels Chart.js drew on one axis of one chart."""
    return driver.execute_script(
        "return Chart.getChart(document.getElementById(arguments[0])).scales[arguments[1]].ticks"
        ".map(t => String(t.label));",
        canvas_id,
        axis,
    )


def _half_empty_rows(driver: Any) -> list[Any]:
    """Rows of dashboard panels that do not span the content width (a panel alone on a half-empty line)."""
    return driver.execute_script(
        """
        const main = document.getElementById('content-main').getBoundingClientRect();
        const rows = {};
        for (const panel of document.querySelectorAll('#content-main .chart-module')) {
          const box = panel.getBoundingClientRect();
          const row = rows[Math.round(box.top)] = rows[Math.round(box.top)] || {left: box.left, right: box.right};
          row.left = Math.min(row.left, box.left);
          row.right = Math.max(row.right, box.right);
        }
        return Object.entries(rows)
          .filter(([top, row]) => row.left - main.left > 2 || main.right - row.right > 2)
          .map(([top, row]) => [Number(top), row.left - main.left, main.right - row.right]);
        """
    )


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
        # given tenant A's admin (not is_staff), when they log in
        _log_in(browser, live_server, "acme-admin", reverse("admin:index"))

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
        _open_dashboard(browser)
        drawn = browser.execute_script(
            "return ['chart-requests', 'chart-spend', 'chart-services']"
            ".map(id => !!(window.Chart && Chart.getChart(document.getElementById(id))));"
        )
        assert drawn == [True, True, True]
        assert browser.execute_script("return Chart.version").startswith("4.")
        assert browser.find_element(By.ID, "dashboard-tenant").text == "acme"
        gauge = browser.find_element(By.ID, "gauge-api_requests").text
        assert "7,200 / 10,000" in gauge
        assert "warn" in browser.find_element(By.ID, "gauge-spend_usd").get_attribute("class")
        _full_page_screenshot(browser, ARTIFACTS / "admin-usage-dashboard.png")
    finally:
        unregister_usage_provider("test.demo_rollups")
    assert (ARTIFACTS / "admin-usage-dashboard.png").stat().st_size > 10_000


def small_spends(tenant: Tenant, first: date, last: date) -> list[DailyUsage] | None:
    """A new user's first days: a few calls of a cheap model (spends of a few hundred-thousandths of a dollar)."""
    if tenant.slug != "newcomer":
        return None
    rows = []
    for offset, calls in ((0, 1), (1, 2), (3, 1)):
        day = last - timedelta(days=offset)
        rows.append(
            DailyUsage(day=day, requests=calls, spend=Decimal("0.0000081") * calls, tokens=20, service="demo/echo")
        )
    rows.append(DailyUsage(day=last, requests=1, spend=Decimal("0.0000035"), tokens=9, service="demo/embed"))
    return rows


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.django_db(transaction=True)
def test_the_dashboard_reads_well_for_a_new_user(browser: Any, live_server: Any) -> None:
    from selenium.webdriver.common.by import By

    # given a tenant in Tokyo with five cheap calls and 10 of its 10,000 monthly requests used (0.1 %)
    tenant = TenantFactory(slug="newcomer", name="Newcomer", tier=Tier.FREE, timezone="Asia/Tokyo")
    MembershipFactory(tenant=tenant, user=UserFactory(username="newcomer-admin"), role=Role.ADMIN)
    quotas.consume(tenant, "api_requests", 10)
    register_usage_provider("test.small_spends", small_spends)
    try:
        # when its admin opens the dashboard
        _log_in(browser, live_server, "newcomer-admin", reverse("admin:usage_dashboard"))
        _open_dashboard(browser)

        # then money axes are plain decimals, request axes whole numbers
        money_labels = _tick_labels(browser, "chart-spend", "y") + _tick_labels(browser, "chart-services", "spend")
        assert money_labels and all(re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2,}", label) for label in money_labels), (
            money_labels
        )
        assert not any("e" in label.lower() for label in money_labels)
        request_labels = _tick_labels(browser, "chart-requests", "y") + _tick_labels(browser, "chart-services", "y")
        assert all(re.fullmatch(r"\d{1,3}(,\d{3})*", label) for label in request_labels), request_labels
        # and hovering today's spend shows the exact amount
        tooltip = browser.execute_script(
            "const chart = Chart.getChart(document.getElementById('chart-spend'));"
            "const last = chart.data.labels.length - 1;"
            "chart.tooltip.setActiveElements([{datasetIndex: 0, index: last}], {x: 0, y: 0}); chart.update();"
            "return chart.tooltip.body.flatMap(item => item.lines);"
        )
        assert tooltip == ["Spend (USD): 0.0000116"]

        # and the 0.1 % gauge shows a sliver while its number stays exact
        gauge = browser.find_element(By.ID, "gauge-api_requests")
        fill = gauge.find_elements(By.CLASS_NAME, "gauge-fill")
        assert fill and fill[0].size["width"] >= 2
        assert "10 / 10,000 (0.1 %)" in gauge.text
        assert not browser.find_element(By.ID, "gauge-tokens").find_elements(By.CLASS_NAME, "gauge-fill")

        # and reset times name the time zone, and the actions are explained
        assert "Asia/Tokyo" in gauge.text
        explanation = browser.find_element(By.ID, "quota-actions").text
        assert all(action in explanation for action in ("block", "throttle", "alert"))

        # and at common widths no panel sits alone on a half-empty line
        for width in (1024, 1280, 1440, 1920):
            browser.set_window_size(width, 1000)
            assert _half_empty_rows(browser) == [], width
    finally:
        unregister_usage_provider("test.small_spends")


@pytest.mark.slow
@pytest.mark.timeout(60)
@pytest.mark.django_db(transaction=True)
def test_a_new_keys_secret_is_copied_with_one_click(browser: Any, live_server: Any) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    # given the admin of one tenant, allowed to use the clipboard, on the form that adds an API key
    tenant = TenantFactory(slug="solo", name="Solo")
    MembershipFactory(tenant=tenant, user=UserFactory(username="solo-admin"), role=Role.ADMIN)
    browser.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": live_server.url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    _log_in(browser, live_server, "solo-admin", reverse("admin:consumption_apikey_add"))
    _wait(browser, lambda d: d.find_elements(By.ID, "id_name"))
    assert Select(browser.find_element(By.ID, "id_tenant")).first_selected_option.text == str(tenant)

    # when they save a key and click Copy beside its secret
    browser.find_element(By.ID, "id_name").send_keys("laptop")
    browser.find_element(By.NAME, "_save").click()
    secret = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "code.once-shown-secret"))[0]
    button = browser.find_element(By.CSS_SELECTOR, "code.once-shown-secret + button.copy-secret")
    button.click()
    _wait(browser, lambda d: button.text == "Copied")

    # then the clipboard holds the secret
    pasted = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "navigator.clipboard.readText().then(done, error => done('error: ' + error));"
    )
    assert secret.text.startswith("mk_") and pasted == secret.text
