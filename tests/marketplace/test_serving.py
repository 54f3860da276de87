"""How the suite is served: web keeps an idle connection open longer than clients (the OpenAI SDK and httpx reuse
one for up to 5 s) and load balancers (typically 60 s) do, so a reused connection is never one the server is closing
at that very moment (with uvicorn's default of 5 s, the soak saw about one call in 2 000 end without an answer)."""

from __future__ import annotations

import http.client
import os
import re
import time
from pathlib import Path

import httpx
import pytest

from tests.support import cluster

REPO = Path(__file__).resolve().parents[2]
KEEP_ALIVE = re.compile(r"--timeout-keep-alive[ =](\d+)")
CLIENT_IDLE_SECONDS = httpx.Limits().keepalive_expiry or 5.0
LOAD_BALANCER_IDLE_SECONDS = 60


def _web_commands() -> dict[str, str]:
    makefile = (REPO / "Makefile").read_text()
    run_recipe = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    deployment = (REPO / "docs/deployment.md").read_text()
    web_row = next(line for line in deployment.splitlines() if line.startswith("| **web**"))
    return {
        "make run": run_recipe,
        "docs/deployment.md (web)": web_row,
        "the test cluster": " ".join(cluster.uvicorn_command(0)),
    }


@pytest.mark.parametrize("where", sorted(_web_commands()))
def test_every_web_command_outlasts_clients_and_load_balancers(where: str) -> None:
    command = _web_commands()[where]
    assert "marketplace.asgi:application" in command
    found = KEEP_ALIVE.search(command)
    assert found, f"{where} serves with uvicorn's default keep-alive (5 s)"
    assert int(found.group(1)) > max(CLIENT_IDLE_SECONDS, LOAD_BALANCER_IDLE_SECONDS)


def test_a_connection_idle_past_the_clients_expiry_still_answers() -> None:
    # given the project served as production serves it, and a client that reused its connection after 5 s
    server = cluster.WebServer(
        {**os.environ, "DJANGO_SETTINGS_MODULE": "settings.test", "OTEL_ENABLED": "false", "LOG_LEVEL": "WARNING"}
    )
    server.start()
    try:
        server.wait(seconds=60)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        connection.request("GET", "/healthz")
        assert connection.getresponse().read() and connection.sock is not None
        socket_before = connection.sock

        # when the connection sits idle a little longer than the client's keep-alive expiry, then carries a request
        time.sleep(CLIENT_IDLE_SECONDS + 1)
        connection.request("GET", "/healthz")
        answer = connection.getresponse()

        # then the server answers on that very connection
        assert answer.status == 200
        assert connection.sock is socket_before
        connection.close()
    finally:
        server.close()
