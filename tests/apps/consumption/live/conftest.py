"""Live servers for the proxy tests: the project under uvicorn in real processes, and a local upstream."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from urllib.parse import urlparse, urlunparse

import pytest
from django.db import connection

from tests.support import cluster
from tests.support.cluster import REPO, free_port


def database_url() -> str:
    """The URL of the test database this test runs on, for server processes."""
    settings_dict = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings_dict['NAME']}"
    parsed = urlparse(os.environ["DATABASE_URL"])
    return urlunparse(parsed._replace(path="/" + settings_dict["NAME"]))


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
                    cluster.uvicorn_command(port),
                    cwd=REPO,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=cluster.log_file(port),
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url, process in zip(urls, processes[-count:], strict=True):
            cluster.wait_healthy(url, process, url.rsplit(":", 1)[1], seconds=30)
        return urls

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
