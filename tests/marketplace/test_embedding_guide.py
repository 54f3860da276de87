"""docs/embedding.md, followed as written: each `<!-- step: ... -->` block of the guide is run in a fresh directory
with the freshly built wheel, and the suite answers a billed chat completion from the embedding project; then a
browser's view of it: the admin, the usage dashboard and the API docs with their static files, GraphQL explaining
itself, one log format.

Two deviations, both about this machine rather than the guide: the new virtual environment sees the test run's
installed packages through a `.pth` file (so installing the wheel downloads nothing), and `PORT` is a free port
instead of 8000 (tests run in parallel)."""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]
GUIDE = REPO / "docs" / "embedding.md"
STEP = re.compile(r"<!-- step: (?P<kind>\w+)(?: (?P<path>\S+))? -->\n```\w*\n(?P<body>.*?)\n```", re.S)
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CONTENT_TYPES = {".css": ("text/css",), ".js": ("text/javascript", "application/javascript"), ".png": ("image/png",)}
# A line of llm_infra_django's console format (DEBUG is on in a new project): time, [level], event.
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z? \[\w+\s*\] \S")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def steps() -> list[tuple[str, str | None, str]]:
    return [(m["kind"], m["path"], m["body"]) for m in STEP.finditer(GUIDE.read_text())]


def test_the_guide_has_every_kind_of_step() -> None:
    kinds = [kind for kind, _, _ in steps()]
    assert kinds.count("run") == 2 and {"append", "write", "serve", "check"} <= set(kinds)


def test_the_guides_commands_take_the_port_from_a_variable() -> None:
    for kind, _, body in steps():
        if kind in ("run", "serve", "check"):
            assert "8000" not in body, body


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
        "PORT": str(port),
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
                    ["bash", "-c", "exec " + body],
                    cwd=project,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                wait_for(f"http://127.0.0.1:{port}/healthz", server, tmp_path / "server.log")
            elif kind == "check":
                output = bash(body, timeout=120)
                documents = json_values(output)
                completion = next(d for d in documents if d.get("object") == "chat.completion")
                assert completion["choices"][0]["message"]["content"]
                assert completion["usage"]["total_tokens"] > 0
                models = next(d for d in documents if d.get("object") == "list")
                assert "demo-provider/echo" in {m["id"] for m in models["data"]}
                assert any("results" in d for d in documents)  # the usage list
                what_a_browser_shows(f"http://127.0.0.1:{port}")
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
    assert server is not None, "the guide never served the project"
    # and the server's log, uvicorn's lines included, is in one format
    lines = [line for line in (tmp_path / "server.log").read_text().splitlines() if line.strip()]
    assert lines and [line for line in lines if not LOG_LINE.match(line)] == []


class Assets(HTMLParser):
    """The URLs of a page's scripts, stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        url = values.get("src") if tag == "script" else values.get("href") if tag == "link" else None
        if url:
            self.found.append(url)


def assets_of(html: str) -> list[str]:
    parser = Assets()
    parser.feed(html)
    return parser.found


def what_a_browser_shows(site: str) -> None:
    """The admin's login page, the usage dashboard (signed in as the demo consumer) and the API docs load every
    script, stylesheet and icon they name from the guide's server; `/graphql` tells a person what it is."""
    with httpx.Client(base_url=site, headers={"Accept": BROWSER_ACCEPT}, timeout=30) as browser:
        login = browser.get("/admin/login/")
        pages = {"/admin/login/": login}
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        signed_in = browser.post(
            "/admin/login/?next=/admin/",
            data={"username": "consumer", "password": "demo", "csrfmiddlewaretoken": token},
        )
        assert signed_in.status_code == 302, signed_in.text[:2000]
        pages |= {path: browser.get(path) for path in ("/admin/usage-dashboard/", "/api/docs/")}
        for path, page in pages.items():
            assert page.status_code == 200, (path, page.text[:2000])
            assets = assets_of(page.text)
            assert any(url.endswith(".css") for url in assets) and any(url.endswith(".js") for url in assets), path
            for url in assets:
                assert url.startswith("/") and not url.startswith("//"), (path, url)  # from this server only
                served = browser.get(url)
                assert served.status_code == 200, (path, url, served.status_code)
                suffix = Path(url.split("?")[0]).suffix
                assert served.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (url, served.headers)
        # the API docs name no other host at all (Swagger UI's favicon included)
        docs = pages["/api/docs/"].text
        assert [url for url in re.findall(r"https?://[^\s\"'<>]*", docs) if not url.startswith(site)] == []
        assert any(url.endswith(".png") for url in assets_of(docs))

        graphql = browser.get("/graphql")
        assert graphql.headers["content-type"].startswith("text/html"), graphql.text
        assert "GraphiQL" in graphql.text and "POST" in graphql.text


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
