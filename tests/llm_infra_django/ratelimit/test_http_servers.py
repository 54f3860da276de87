"""A DRF throttle over real HTTP: two uvicorn processes share one limit through Redis."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
LIMIT = 25
PERIOD = 3600
REQUESTS = 80


def _start_server(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.llm_infra_django.ratelimit.server_asgi:application",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with log.open("wb") as output:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)


def _wait_until_healthy(server: subprocess.Popen[bytes], url: str, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"server exited with {server.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail(f"server at {url} not healthy after {timeout} s:\n{log.read_text()}")


@pytest.mark.redis
@pytest.mark.slow
def test_two_server_processes_admit_exactly_the_limit(redis_url: str, redis_scope: str, tmp_path: Path) -> None:
    # given: two uvicorn processes on one Redis, throttled at LIMIT per hour per client
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "tests.llm_infra_django.ratelimit.server_settings",
        "REDIS_URL": redis_url,
        "RATELIMIT_TEST_SCOPE": redis_scope,
        "RATELIMIT_TEST_RATE": f"{LIMIT}/hour",
    }
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    servers = []
    try:
        for index, url in enumerate(urls):
            servers.append(_start_server(int(url.rsplit(":", 1)[1]), env, tmp_path / f"server{index}.log"))
        for index, (server, url) in enumerate(zip(servers, urls, strict=True)):
            _wait_until_healthy(server, url, tmp_path / f"server{index}.log")

        # when: concurrent requests spread over both servers
        with httpx.Client(timeout=10) as client, ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(lambda i: client.get(f"{urls[i % 2]}/burst"), range(REQUESTS)))
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)

    # then
    allowed = [r for r in responses if r.status_code == 200]
    denied = [r for r in responses if r.status_code != 200]
    assert len(allowed) == LIMIT
    assert len(denied) == REQUESTS - LIMIT
    longest_wait = math.ceil(PERIOD / LIMIT)
    for response in allowed:
        assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert 0 <= int(response.headers["X-RateLimit-Remaining"]) < LIMIT
        assert "Retry-After" not in response.headers
    for response in denied:
        assert response.status_code == 429
        body = response.json()
        assert body["error"]["code"] == "rate_limit_exceeded"
        assert body["request_id"] == response.headers["X-Request-ID"]
        assert 1 <= int(response.headers["Retry-After"]) <= longest_wait
        assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
        assert response.headers["X-RateLimit-Remaining"] == "0"
        assert int(response.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert sorted(int(r.headers["X-RateLimit-Remaining"]) for r in allowed) == list(range(LIMIT))
