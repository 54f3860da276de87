"""docs/embedding.md, followed as written: each `<!-- step: ... -->` block of the guide is run in a fresh directory
with the freshly built wheel, and the suite answers a billed chat completion from the embedding project.

Two deviations, both about this machine rather than the guide: the new virtual environment sees the test run's
installed packages through a `.pth` file (so installing the wheel downloads nothing), and the server listens on a free
port instead of 8000 (tests run in parallel)."""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "embedding.md"
STEP = re.compile(r"<!-- step: (?P<kind>\w+)(?: (?P<path>\S+))? -->\n```\w*\n(?P<body>.*?)\n```", re.S)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def steps() -> list[tuple[str, str | None, str]]:
    return [(m["kind"], m["path"], m["body"]) for m in STEP.finditer(GUIDE.read_text())]


def test_the_guide_has_every_kind_of_step() -> None:
    kinds = [kind for kind, _, _ in steps()]
    assert kinds.count("run") == 2 and {"append", "write", "serve", "check"} <= set(kinds)


def test_following_the_embedding_guide_serves_a_billed_chat_completion(wheel: Path, tmp_path: Path) -> None:
    project = tmp_path / "embedded"
    project.mkdir()
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "PYTHON", "VIRTUAL_ENV"))
        },
        "WHEEL": str(wheel),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "LOG_LEVEL": "WARNING",
    }

    def bash(script: str, timeout: int = 300) -> str:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, f"{script}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        return result.stdout

    def on_port(text: str) -> str:
        return text.replace("127.0.0.1:8000", f"127.0.0.1:{port}").replace("--port 8000", f"--port {port}")

    server = None
    try:
        for kind, path, body in steps():
            if kind == "run":
                lines = body.splitlines()
                if lines[0].startswith("python -m venv"):
                    bash(lines[0])
                    see_installed_packages(project / ".venv")
                    lines = lines[1:]
                bash("\n".join(lines))
            elif kind in ("append", "write"):
                target = project / str(path)
                before = target.read_text() if kind == "append" and target.exists() else ""
                target.write_text(before + ("\n" if before else "") + body + "\n")
            elif kind == "serve":
                log = (tmp_path / "server.log").open("wb")
                server = subprocess.Popen(
                    ["bash", "-c", "exec " + on_port(body)],
                    cwd=project,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                wait_for(f"http://127.0.0.1:{port}/healthz", server, tmp_path / "server.log")
            elif kind == "check":
                output = bash(on_port(body), timeout=120)
                documents = json_values(output)
                completion = next(d for d in documents if d.get("object") == "chat.completion")
                assert completion["choices"][0]["message"]["content"]
                assert completion["usage"]["total_tokens"] > 0
                models = next(d for d in documents if d.get("object") == "list")
                assert "demo-provider/echo" in {m["id"] for m in models["data"]}
                assert any("results" in d for d in documents)  # the usage list
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    assert server is not None, "the guide never served the project"


def json_values(text: str) -> list[dict]:
    """The JSON documents curl printed one after another (without newlines between them)."""
    decoder, values, index = json.JSONDecoder(), [], 0
    while index < len(text):
        if text[index].isspace():
            index += 1
            continue
        value, index = decoder.raw_decode(text, index)
        values.append(value)
    return values


def see_installed_packages(venv: Path) -> None:
    """Let the new environment import what this test run has installed (no download when the wheel installs)."""
    (site_packages,) = venv.glob("lib/python3*/site-packages")
    paths = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_packages / "_test_run_packages.pth").write_text("\n".join(paths) + "\n")


def wait_for(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"the server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer: {log.read_text()[-3000:]}")
