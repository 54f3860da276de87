"""Retake docs/admin-usage-dashboard.png from the demo data, as a new user following the README would see it.

    .venv/bin/python docs/screenshot_dashboard.py [--out docs/admin-usage-dashboard.png] [--width 1400]

Runs what `make run` and the README's first five minutes do, in a throw-away SQLite database: `migrate`, `seed_demo`,
uvicorn, a key from `create_api_key`, calls of `demo-provider/echo` (curl's request, the OpenAI SDK, a stream), the
provider publishing `my-echo` and one call of it; then logs in as `consumer`/`demo` in headless Chromium and saves
the usage dashboard. Needs chromium and chromium-driver (Debian packages). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python docs/screenshot_dashboard.py` from a checkout

from tests.apps.tenancy.browser.conftest import CHROME_ARGS, CHROMEDRIVER, CHROMIUM  # noqa: E402
from tests.support.cluster import uvicorn_command  # noqa: E402

PY = sys.executable
CONSUMER, PROVIDER, PASSWORD = "consumer", "provider", "demo"
ECHO = "demo-provider/echo"
MY_ECHO = {
    "slug": "my-echo",
    "version": "1.0.0",
    "name": "My Echo",
    "category": "chat",
    "description": "My first service: the built-in echo provider.",
    "endpoint": {"protocol": "echo", "model": "echo-1"},
    "pricing": {"model": "per_token", "input_per_mtok": "0.50", "output_per_mtok": "1.50"},
    "compliance": {"level": "public", "data_residency": ["US"]},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project_env(database: Path) -> dict[str, str]:
    """`make run`'s defaults (SQLite, local-memory cache, eager tasks), whatever this shell exports."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("REDIS_", "CELERY_"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "settings.dev",
            "DATABASE_URL": f"sqlite:///{database}",
            "OTEL_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


def manage(env: dict[str, str], *args: str) -> str:
    command = [PY, "manage.py", *args]
    done = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)  # noqa: S603
    return done.stdout


def new_key(env: dict[str, str], *args: str) -> str:
    """The README's `create_api_key … | tail -n 1`."""
    return manage(env, "create_api_key", *args).strip().splitlines()[-1]


def wait_http(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def first_five_minutes(site: str, env: dict[str, str]) -> None:
    """Steps 2 to 4 of the README: a key, calls of the echo model, a published service and a call of it."""
    from openai import OpenAI

    key = new_key(env, "--tenant", "demo-consumer", "--scopes", "consume,read", "--rpm", "60", "--tpm", "100000")
    auth = {"Authorization": f"Bearer {key}"}
    for text in ("Hello!", "What is a token?", "Count to three."):
        body = {"model": ECHO, "messages": [{"role": "user", "content": text}]}
        httpx.post(f"{site}/v1/chat/completions", json=body, headers=auth, timeout=30).raise_for_status()
    client = OpenAI(base_url=f"{site}/v1", api_key=key)
    client.chat.completions.create(model=ECHO, messages=[{"role": "user", "content": "Hi"}])
    for _chunk in client.chat.completions.create(
        model=ECHO, stream=True, messages=[{"role": "user", "content": "Stream me"}]
    ):
        pass

    publisher = new_key(env, "--tenant", "demo-provider", "--user", PROVIDER, "--scopes", "publish,read")
    published = httpx.post(
        f"{site}/api/v1/services/", json=MY_ECHO, headers={"Authorization": f"Bearer {publisher}"}, timeout=60
    )
    published.raise_for_status()
    body = {"model": "demo-provider/my-echo", "messages": [{"role": "user", "content": "Hi there"}]}
    httpx.post(f"{site}/v1/chat/completions", json=body, headers=auth, timeout=30).raise_for_status()


def screenshot(site: str, out: Path, width: int) -> None:
    """Log in as the consumer and save the whole dashboard page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROME_ARGS:
        options.add_argument(argument)
    with tempfile.TemporaryDirectory() as profile:
        options.add_argument(f"--user-data-dir={profile}")
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.get(f"{site}/admin/login/?next=/admin/usage-dashboard/")
            driver.find_element(By.ID, "id_username").send_keys(CONSUMER)
            driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
            driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
            WebDriverWait(driver, 20).until(
                lambda d: d.execute_script("return document.documentElement.dataset.dashboardReady === '1'")
            )
            # The whole page in one picture: as tall as the page is at this width, without a scroll bar.
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.execute_script("document.documentElement.style.overflow = 'hidden'")
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            driver.save_screenshot(str(out))
        finally:
            driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "admin-usage-dashboard.png")
    parser.add_argument("--width", type=int, default=1400, help="Window width in CSS pixels (default 1400).")
    args = parser.parse_args()
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            sys.exit(f"{path} is missing: apt-get install chromium chromium-driver")
    with tempfile.TemporaryDirectory() as workdir:
        env = project_env(Path(workdir) / "db.sqlite3")
        port = free_port()
        site = f"http://127.0.0.1:{port}"
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "seed_demo", "--site-url", site)
        server = subprocess.Popen(  # noqa: S603
            uvicorn_command(port), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_http(f"{site}/healthz")
            first_five_minutes(site, env)
            screenshot(site, args.out, args.width)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
