"""Settings from the environment: defaults, parsing, and the production guard."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROD_ENV = {
    "SECRET_KEY": "prod-" + "x7Gq2vLm9Rt4Wz8Kp3Nc6Hb1Jd5Fs0Ay" * 2,
    "ALLOWED_HOSTS": "marketplace.example.com",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}
PROBE = """
import json, django
from django.conf import settings
django.setup()
print(json.dumps({
    "debug": settings.DEBUG,
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_options": settings.DATABASES["default"].get("OPTIONS", {}),
    "cache_backend": settings.CACHES["default"]["BACKEND"],
    "eager": settings.CELERY_TASK_ALWAYS_EAGER,
    "allowed_hosts": settings.ALLOWED_HOSTS,
    "upstreams": {k: v["URL"] for k, v in settings.LLM_INFRA["UPSTREAMS"].items()},
    "shield_timeout": settings.LLM_INFRA["UPSTREAMS"]["shield"]["TIMEOUT_MS"],
    "metrics": [settings.LLM_INFRA["METRICS_TOKEN"], settings.LLM_INFRA["METRICS_ALLOWED_NETWORKS"]],
}))
"""


def clean_env(**values: str) -> dict[str, str]:
    """The current environment minus everything settings read, plus `values`."""
    read = {
        "DEBUG",
        "SECRET_KEY",
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "LOG_JSON",
        "LLM_REGISTRY_URL",
        "LLM_SHIELD_URL",
        "POLICY_ENGINE_URL",
        "LLM_SHIELD_TIMEOUT_MS",
        "CELERY_RESULT_BACKEND",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "METRICS_TOKEN",
        "METRICS_ALLOWED_NETWORKS",
        "DJANGO_SETTINGS_MODULE",
    }
    env = {k: v for k, v in os.environ.items() if k not in read}
    env.update(values)
    return env


def probe(settings_module: str, **env: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO,
        env=clean_env(DJANGO_SETTINGS_MODULE=settings_module, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_embedded_defaults(tmp_path: Path) -> None:
    # given no server configured
    values = probe("settings.dev", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")

    # then SQLite in WAL mode, local memory cache, eager tasks, debug on in dev
    assert values["db_engine"] == "django.db.backends.sqlite3"
    assert "journal_mode=WAL" in values["db_options"]["init_command"]
    assert values["cache_backend"] == "django.core.cache.backends.locmem.LocMemCache"
    assert values["eager"] is True
    assert values["debug"] is True
    assert values["upstreams"] == {"registry": None, "shield": None, "policy_engine": None}
    assert values["metrics"] == [None, []]  # /metrics open


def test_servers_from_the_environment() -> None:
    values = probe(
        "settings.dev",
        DEBUG="false",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        REDIS_URL="redis://127.0.0.1:6379/3",
        CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//",
        ALLOWED_HOSTS="a.example.com,b.example.com",
        LLM_SHIELD_URL="http://shield.internal:8080",
        LLM_SHIELD_TIMEOUT_MS="150",
        METRICS_TOKEN="scrape-token",
        METRICS_ALLOWED_NETWORKS="10.0.0.0/8,fd00::/8",
    )
    assert values["debug"] is False, '"false" must parse as False'
    assert values["db_engine"] == "django.db.backends.postgresql"
    assert values["cache_backend"] == "llm_infra_django.cache.RedisCache"
    assert values["eager"] is False
    assert values["allowed_hosts"] == ["a.example.com", "b.example.com"]
    assert values["upstreams"]["shield"] == "http://shield.internal:8080"
    assert values["shield_timeout"] == 150
    assert values["metrics"] == ["scrape-token", ["10.0.0.0/8", "fd00::/8"]]


def test_sqlite_default_runs_in_wal_mode(tmp_path: Path) -> None:
    script = (
        "import django; django.setup(); from django.db import connection;"
        "cursor = connection.cursor(); cursor.execute('PRAGMA journal_mode'); print(cursor.fetchone()[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=clean_env(DJANGO_SETTINGS_MODULE="settings.dev", DATABASE_URL=f"sqlite:///{tmp_path / 'wal.sqlite3'}"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.strip() == "wal", result.stderr


@pytest.mark.parametrize("missing", sorted(PROD_ENV))
def test_prod_refuses_to_start_naming_what_is_missing(missing: str) -> None:
    env = {k: v for k, v in PROD_ENV.items() if k != missing}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO,
        env=clean_env(DJANGO_SETTINGS_MODULE="settings.prod", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr
    for present in env:
        assert f" {present}" not in result.stderr.split("missing or empty:")[-1]


def test_prod_passes_check_deploy() -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING", "--settings=settings.prod"],
        cwd=REPO,
        env=clean_env(**PROD_ENV),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
