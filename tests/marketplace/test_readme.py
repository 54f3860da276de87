"""The README's first five minutes, through the test client: the demo data, the documented keys, the echo call and
the publish example (its JSON body taken from the README itself), then a call of the published service."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client

from tests.apps.consumption.conftest import drain_ledger

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()

pytestmark = pytest.mark.django_db(transaction=True)


def key_from(command_line: str) -> str:
    """Run a documented `manage.py create_api_key ...` line; the secret is the last line of its output."""
    arguments = command_line.split("manage.py create_api_key", 1)[1].split("|")[0].replace("\\\n", " ").split()
    out = StringIO()
    call_command("create_api_key", *arguments, stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_the_first_five_minutes(settings) -> None:
    settings.ALLOWED_HOSTS = ["*"]
    call_command("seed_demo", stdout=StringIO())
    consumer_line = re.search(r"export KEY=\$\((.*?)\)\n", README, re.S).group(1)
    publisher_line = re.search(r"PUB=\$\((.*?)\)\n", README, re.S).group(1)
    key, pub = key_from(consumer_line), key_from(publisher_line)

    chat = {"model": "demo-provider/echo", "messages": [{"role": "user", "content": "Hello!"}]}
    answer = Client().post(
        "/v1/chat/completions", json.dumps(chat), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert answer.status_code == 200 and answer.json()["usage"]["cost"] > 0

    body = json.loads(re.search(r"/api/v1/services/ .*?-d '(\{.*?\})'", README, re.S).group(1))
    published = Client().post(
        "/api/v1/services/", body, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {pub}"
    )
    assert published.status_code == 202, published.content
    assert published.json()["version"]["status"] == "active"

    mine = {"model": f"demo-provider/{body['slug']}", "messages": [{"role": "user", "content": "Hi there"}]}
    answer = Client().post(
        "/v1/chat/completions", json.dumps(mine), content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert answer.status_code == 200, answer.content
    # step 5 without a browser: the documented usage calls show both calls (the ledger drains eagerly here)
    drain_ledger()
    paths = re.findall(r'curl -s "?http://127\.0\.0\.1:8000(/api/v1/usage/[^"\s]*)"?', README)
    assert sorted(paths) == ["/api/v1/usage/", "/api/v1/usage/summary/?days=30"], paths
    records = Client().get("/api/v1/usage/", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert records.status_code == 200 and len(records.json()["results"]) == 2, records.content
    summary = Client().get("/api/v1/usage/summary/?days=30", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert summary.status_code == 200, summary.content
    totals = summary.json()["totals"]
    assert totals["requests"] == 2 and float(totals["cost"]) > 0, totals
    assert sorted(row["service"] for row in summary.json()["per_service"]) == [
        "demo-provider/echo",
        f"demo-provider/{body['slug']}",
    ]


def one_line(command: str) -> str:
    return " ".join(command.replace("\\\n", " ").split())


def test_seed_demo_prints_the_readmes_key_command_and_the_sdk_already_installed() -> None:
    # given the README's key command (step 2) and the OpenAI SDK in this environment (requirements/dev.txt)
    readme_command = re.search(r"export KEY=\$\(.*?\)\n", README, re.S).group(0)
    assert importlib.util.find_spec("openai") is not None

    # when seed_demo tells what to do next
    out = StringIO()
    call_command("seed_demo", stdout=out)
    printed = out.getvalue()

    # then it prints the same command, and runs the SDK example without installing anything
    (key_line,) = [line for line in printed.splitlines() if "create_api_key" in line]
    assert one_line(key_line) == one_line(readme_command)
    assert "pip install" not in printed
    assert ".venv/bin/python" in printed.split("OpenAI SDK", 1)[1]
    assert "README" not in printed  # a project embedding the suite has no such README


def test_seed_demo_says_how_to_install_the_sdk_where_it_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    # given an environment without the OpenAI SDK (a project embedding the suite: not a dependency of the wheel)
    monkeypatch.setitem(sys.modules, "openai", None)

    # when seed_demo tells what to do next
    out = StringIO()
    call_command("seed_demo", stdout=out)

    # then the SDK example says how to install it
    assert "pip install openai" in out.getvalue().split("OpenAI SDK", 1)[1]
