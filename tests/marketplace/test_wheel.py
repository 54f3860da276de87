"""One wheel holds the three packages, and `llm_infra_django` works in a brand-new Django project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

THROWAWAY_SETTINGS = """
INSTALLED_APPS += ["rest_framework", "llm_infra_django"]
MIDDLEWARE = ["llm_infra_django.middleware.RequestContextMiddleware", *MIDDLEWARE,
              "llm_infra_django.middleware.ErrorEnvelopeMiddleware"]
REST_FRAMEWORK = {"EXCEPTION_HANDLER": "llm_infra_django.drf.exception_handler"}
LLM_INFRA = {"TRACING": {"ENABLED": False}, "THROTTLE_RATES": {"burst": "3/min"}}
ALLOWED_HOSTS = ["testserver"]
"""

THROWAWAY_URLS = """
from django.urls import include, path
from rest_framework.decorators import api_view, throttle_classes
from rest_framework.response import Response
from llm_infra_django.errors import NotFoundError
from llm_infra_django.ratelimit.throttles import TokenBucketThrottle


@api_view(["GET"])
def missing(request):
    raise NotFoundError("Widget", "w-1")


class Burst(TokenBucketThrottle):
    scope = "burst"


@api_view(["GET"])
@throttle_classes([Burst])
def limited(request):
    return Response({"ok": True})


def plain_missing(request):
    raise NotFoundError("Gadget", "g-1")


urlpatterns = [path("", include("llm_infra_django.urls")), path("drf", missing), path("plain", plain_missing),
               path("limited", limited)]
"""

CLIENT_SCRIPT = """
import json, django
django.setup()
from django.test import Client
import llm_infra_django
client = Client()
drf = client.get("/drf")
plain = client.get("/plain")
limited = [client.get("/limited") for _ in range(4)]
print(json.dumps({"drf": [drf.status_code, drf.json()], "plain": [plain.status_code, plain.json()],
                  "healthz": client.get("/healthz").status_code, "module": llm_infra_django.__file__,
                  "limited": [r.status_code for r in limited], "retry_after": limited[-1].get("Retry-After"),
                  "limited_error": limited[-1].json()["error"]["code"]}))
"""


def test_one_wheel_holds_infra_apps_and_project(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert tops == {"llm_infra_django", "apps", "marketplace"}
    assert "llm_infra_django/py.typed" in names
    assert "apps/tenancy/apps.py" in names
    assert not any(name.startswith(("settings/", "tests/")) for name in names)


def test_the_wheel_builds_without_deprecation_warnings(wheel: Path) -> None:
    # setuptools announces a metadata form it will stop accepting (the `project.license` table: 2027-02-18)
    output = wheel.with_suffix(".log").read_text()
    assert [line for line in output.splitlines() if "deprecat" in line.lower()] == []
    archive = zipfile.ZipFile(wheel)
    metadata = archive.read(next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: LicenseRef-Proprietary" in metadata.splitlines()


def test_llm_infra_django_in_a_fresh_django_project(wheel: Path, tmp_path: Path) -> None:
    # given the wheel installed alone (no repository on the path) and a project made by django-admin
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    project = tmp_path / "throwaway"
    project.mkdir()
    django_admin = Path(sys.executable).with_name("django-admin")
    subprocess.run([str(django_admin), "startproject", "proj", str(project)], check=True, timeout=60)
    with (project / "proj" / "settings.py").open("a") as settings_file:
        settings_file.write(THROWAWAY_SETTINGS)
    (project / "proj" / "urls.py").write_text(THROWAWAY_URLS)
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")},
        "PYTHONPATH": str(site),
        "DJANGO_SETTINGS_MODULE": "proj.settings",
    }

    # when the project checks itself and serves the views
    check = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )
    served = subprocess.run(
        [sys.executable, "-c", CLIENT_SCRIPT], cwd=project, env=env, capture_output=True, text=True, timeout=60
    )

    # then the checks pass and both kinds of view answer with the error envelope, from the installed wheel
    assert check.returncode == 0, check.stdout + check.stderr
    assert served.returncode == 0, served.stderr
    result = json.loads(served.stdout.strip().splitlines()[-1])
    assert result["module"].startswith(str(site))
    for kind, resource in (("drf", "Widget"), ("plain", "Gadget")):
        status, body = result[kind]
        assert status == 404
        assert body["error"]["code"] == "not_found"
        assert body["error"]["details"]["resource"] == resource
        assert body["request_id"]
    assert result["healthz"] == 200
    # and a DRF view is throttled by the token bucket: 3 per minute, then 429 with Retry-After and the envelope
    assert result["limited"] == [200, 200, 200, 429]
    assert int(result["retry_after"]) >= 1
    assert result["limited_error"] == "rate_limit_exceeded"
