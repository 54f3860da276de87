"""Live servers for the proxy tests: the project under uvicorn in real processes, and a local upstream."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import httpx
import pytest
from django.db import connection

from tests.conftest import free_port
from tests.support import openai_upstream

REPO = Path(__file__).resolve().parents[4]


def database_url() -> str:
    """The URL of the test database this test runs on, for server processes."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    parsed = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parsed._replace(path="/" + settings_dict["NAME"]))


LOG_DIR = REPO / "var" / "server-logs"


def log_file(port: int):  # type: ignore[no-untyped-def]
    """Server output goes to var/server-logs/<port>.log, kept for diagnosis."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    return (LOG_DIR / f"{port}.log").open("wb")


@pytest.fixture
def start_servers(transactional_db) -> Iterator[Callable[[int], list[str]]]:
    """Start N uvicorn processes serving the project on this test database; returns their base URLs."""
    processes: list[subprocess.Popen[bytes]] = []

    def start(count: int = 1) -> list[str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": database_url(),
            "OTEL_ENABLED": "false",
            "LOG_LEVEL": "WARNING",
        }
        urls = []
        for _ in range(count):
            port = free_port()
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "marketplace.asgi:application",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--loop",
                        "uvloop",
                        "--http",
                        "httptools",
                        "--no-access-log",
                        "--lifespan",
                        "off",
                    ],
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=log_file(port),
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 30
        for url, process in zip(urls, processes[-count:], strict=True):
            while True:
                if process.poll() is not None:
                    port = url.rsplit(":", 1)[1]
                    raise RuntimeError("server exited: " + (LOG_DIR / f"{port}.log").read_text()[-3000:])
                try:
                    if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start in 30 s")
                time.sleep(0.1)
        return urls

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def upstream() -> Iterator[tuple[openai_upstream.Behaviour, str]]:
    server, behaviour, url = openai_upstream.start()
    yield behaviour, url
    server.shutdown()
    server.server_close()
