"""The security checklist of issue 9, as tests: CSRF on session-authenticated writes, CORS off by default, secure
cookies, HSTS and the upstream SSRF guard in production settings, admin brute force throttled, injection attempts in
every query parameter harmless, request body size limits, no secret from a URL in the logs."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.tenancy.models import AuditLog, Role, Tenant
from tests.apps.publishing.test_api import definition
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory
from tests.support.asgi import asgi_request, proxy_application

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "a-long-password-nobody-guesses-1"
INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE tenancy_tenant; --",
    '" OR ""="',
    "%' UNION SELECT username, password FROM auth_user --",
    "1) OR (1=1",
    "\\'; SELECT pg_sleep(0); --",
    "%",
    "_",
]


@pytest.fixture
def world(transactional_db):
    owner = UserFactory(username=f"owner-{uuid.uuid4().hex[:6]}")
    owner.set_password(PASSWORD)
    owner.save()
    acme = TenantFactory(slug="acme", trusted_publisher=True)
    MembershipFactory(tenant=acme, user=owner, role=Role.OWNER)
    publishing.publish_service(
        publisher=acme, actor=owner, slug="echo", version="1.0.0", values={**_flat(definition())}
    )
    _, secret = create_api_key(tenant=acme, actor=owner, name="admin", scopes=["admin"])
    return {"owner": owner, "acme": acme, "secret": secret}


def _flat(body: dict) -> dict:
    """The REST body as the service function's flat values (what the serializer produces)."""
    return {
        "name": body["name"],
        "description": body["description"],
        "category": body["category"],
        "tags": body["tags"],
        "protocol": "echo",
        "upstream_model": "echo-1",
        "pricing_model": "per_token",
        "price_input_per_mtok": "0.5",
        "price_output_per_mtok": "1.5",
        "data_residency": ["US"],
    }


# --- CSRF -------------------------------------------------------------------------------------------------------


def test_session_writes_need_the_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world["owner"])
    body = {"name": "Initech", "slug": "initech"}
    refused = client.post("/api/v1/tenants/", body, content_type="application/json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]
    assert not Tenant.objects.filter(slug="initech").exists()
    client.get("/admin/")  # sets the csrftoken cookie, as any page with a form does (its log-out button)
    token = client.cookies["csrftoken"].value
    accepted = client.post("/api/v1/tenants/", body, content_type="application/json", HTTP_X_CSRFTOKEN=token)
    assert accepted.status_code == 201, accepted.content


def test_api_keys_need_no_csrf_token(world) -> None:
    client = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    response = client.post(
        "/api/v1/tenants/acme/members/", {"username": "nobody", "role": "member"}, content_type="application/json"
    )
    assert response.status_code != 403 or "CSRF" not in response.content.decode()


# --- CORS -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/services/", "/graphql", "/v1/models", "/api/schema/", "/healthz"])
def test_no_cross_origin_access_by_default(world, path: str) -> None:
    client = Client(HTTP_ORIGIN="https://evil.example", HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    for response in (client.get(path), client.options(path, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")):
        assert "Access-Control-Allow-Origin" not in response
        assert "Access-Control-Allow-Credentials" not in response


# --- Production settings ----------------------------------------------------------------------------------------


def test_production_settings_make_cookies_secure_and_send_hsts() -> None:
    script = (
        "import json; from django.conf import settings as s; "
        "print(json.dumps(dict({k: getattr(s, k) for k in ('SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SESSION_COOKIE_HTTPONLY', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', "
        "'DEBUG', 'X_FRAME_OPTIONS', 'SECURE_CONTENT_TYPE_NOSNIFF')}, "
        "guard=not p.ALLOW_PRIVATE_ENDPOINTS, https=p.REQUIRE_HTTPS)))"
    )
    script = "from apps.publishing.conf import publishing_settings as p; " + script
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECURE_", "DEBUG"))}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "settings.prod",
            "SECRET_KEY": "x" * 60,
            "ALLOWED_HOSTS": "example.com",
            "DATABASE_URL": "postgres://u@127.0.0.1:1/db",
            "REDIS_URL": "redis://127.0.0.1:1/0",
        }
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {script}"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"] and values["SESSION_COOKIE_HTTPONLY"]
    assert values["SECURE_HSTS_SECONDS"] >= 31_536_000 and values["SECURE_HSTS_INCLUDE_SUBDOMAINS"]
    assert values["SECURE_SSL_REDIRECT"] and not values["DEBUG"]
    assert values["X_FRAME_OPTIONS"] == "DENY" and values["SECURE_CONTENT_TYPE_NOSNIFF"]
    # the upstream SSRF guard (publish-time checks and every proxy connection, tests/apps/publishing/test_network.py)
    assert values["guard"] and values["https"]


# --- Admin brute force ------------------------------------------------------------------------------------------


def _address() -> str:
    """A client address no other test (nor an earlier run, on the shared Redis) signed in from."""
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def _sign_in(address: str, username: str, password: str) -> int:
    return Client(REMOTE_ADDR=address).post("/admin/login/", {"username": username, "password": password}).status_code


def test_admin_sign_in_attempts_are_throttled_per_username_and_address(world, settings) -> None:
    # given three attempts allowed per username from one address
    settings.MARKETPLACE_TENANCY = {"ADMIN_LOGIN_RATE": "3/min", "ADMIN_LOGIN_CLIENT_RATE": "100/min"}
    attacker, victim = _address(), world["owner"].username

    # when an attacker fails three times as the victim, then tries the right password
    failures = [_sign_in(attacker, victim, "guess") for _ in range(3)]
    client = Client(REMOTE_ADDR=attacker)
    blocked = client.post("/admin/login/", {"username": victim, "password": PASSWORD})

    # then the attacker is refused for that username, even with the right password
    assert failures == [200, 200, 200]  # the form again, with its error
    assert blocked.status_code == 429 and int(blocked["Retry-After"]) >= 1
    assert "_auth_user_id" not in client.session
    assert _sign_in(attacker, "someone-else", "x") == 200  # other usernames from there: the per-address rate decides


def test_failing_as_someone_from_elsewhere_does_not_lock_them_out(world, settings) -> None:
    # given an attacker who used up the attempts for the victim's username from their own address
    settings.MARKETPLACE_TENANCY = {"ADMIN_LOGIN_RATE": "3/min", "ADMIN_LOGIN_CLIENT_RATE": "100/min"}
    attacker, victim = _address(), world["owner"].username
    assert [_sign_in(attacker, victim, "guess") for _ in range(4)][-1] == 429

    # when the victim signs in from their address
    client = Client(REMOTE_ADDR=_address())
    response = client.post("/admin/login/", {"username": victim, "password": PASSWORD})

    # then they are in
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(world["owner"].pk)


def test_one_address_cannot_try_many_usernames(world, settings) -> None:
    # given five attempts allowed per address, whatever the usernames
    settings.MARKETPLACE_TENANCY = {"ADMIN_LOGIN_RATE": "3/min", "ADMIN_LOGIN_CLIENT_RATE": "5/min"}
    address = _address()

    # when one address tries a new username each time
    statuses = [_sign_in(address, f"user-{n}", "guess") for n in range(6)]

    # then the sixth is refused, and another address is not
    assert statuses == [200] * 5 + [429]
    assert _sign_in(_address(), "user-6", "guess") == 200


# --- Injection --------------------------------------------------------------------------------------------------


def _list_operations(client: Client) -> list[tuple[str, list[str]]]:
    """Every GET operation of the OpenAPI document with its query parameters (paths filled with the world's ids)."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    operations = []
    for path, item in schema["paths"].items():
        get = item.get("get")
        if not get:
            continue
        params = [p["name"] for p in get.get("parameters", []) if p.get("in") == "query"]
        if params:
            operations.append((path.replace("{slug}", "acme"), params))
    return operations


def test_injection_attempts_in_every_query_parameter_are_harmless(world) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    operations = [(path, params) for path, params in _list_operations(client) if "{" not in path]
    assert len(operations) >= 8
    tenants, audit = Tenant.objects.count(), AuditLog.objects.count()
    tried = 0
    for path, params in operations:
        for name in params:
            for payload in INJECTIONS:
                response = client.get(path, {name: payload})
                tried += 1
                assert response.status_code < 500, (path, name, payload, response.content[:300])
    assert tried > 100
    assert Tenant.objects.count() == tenants and AuditLog.objects.count() == audit
    found = client.get("/api/v1/services/", {"search": "' OR '1'='1"}).json()
    assert found["count"] == 0  # the text is searched for, not executed


# --- Body size limits -------------------------------------------------------------------------------------------


def test_oversized_bodies_are_refused_with_a_4xx(world) -> None:
    client = Client(HTTP_AUTHORIZATION=f"Bearer {world['secret']}")
    big_definition = definition(description="x" * 600_000)
    response = client.post("/api/v1/services/", big_definition, content_type="application/json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
    huge = json.dumps({"name": "x" * 3_000_000, "slug": "huge"})
    response = client.post("/api/v1/tenants/", huge, content_type="application/json")
    assert 400 <= response.status_code < 500 and "error" in response.json()
    response = client.post(
        "/graphql", json.dumps({"query": "{ apiVersion }", "pad": "x" * 3_000_000}), content_type="application/json"
    )
    assert 400 <= response.status_code < 500
    chat = {"model": "acme/echo", "messages": [{"role": "user", "content": "x" * 1_100_000}]}
    consumer_key = create_api_key(tenant=world["acme"], actor=world["owner"], name="c", scopes=["consume"])[1]
    response = Client().post(
        "/v1/chat/completions",
        json.dumps(chat),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {consumer_key}",
    )
    assert response.status_code == 413 and "error" in response.json()


# --- Secrets in URLs --------------------------------------------------------------------------------------------


def test_no_secret_from_a_url_reaches_a_log(world, all_logs: io.StringIO) -> None:
    # given a client putting secrets in URLs: a real API key and a password in the query, an API key in a path
    secret = world["secret"]
    query = urlencode({"page": 2, "api_key": secret, "password": PASSWORD})
    bearer = {"Authorization": f"Bearer {secret}"}
    proxy = proxy_application()
    api = Client(HTTP_AUTHORIZATION=bearer["Authorization"])

    # when the proxy (served by its ASGI edge, as in production) and the REST API answer them, mostly with a 4xx
    statuses = [
        asgi_request(proxy, "GET", f"/v1/models?{query}").status_code,
        asgi_request(proxy, "GET", f"/v1/models?{query}", headers=bearer).status_code,
        api.get(f"/api/v1/services/{uuid.uuid4()}/?{query}").status_code,
        Client().get(f"/api/v1/keys/?{query}").status_code,
        api.get(f"/api/v1/keys/{secret}/").status_code,
        Client().get(f"/v1/models?{query}").status_code,  # the same endpoint through Django (embedded projects)
    ]

    # then every request was logged, Django's 4xx warnings included, with the secrets redacted
    assert statuses == [401, 200, 404, 401, 404, 401]
    output = all_logs.getvalue()
    assert output.count('"request_finished"') >= len(statuses)
    assert output.count('"path":"/v1/models"') >= 3
    assert output.count('"logger":"django.request"') >= 4
    assert '"request":"GET /v1/models?page=2&api_key=[REDACTED]&password=[REDACTED]"' in output
    assert secret not in output and PASSWORD not in output
