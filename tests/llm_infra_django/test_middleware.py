"""The security headers middleware: what Django's SecurityMiddleware and XFrameOptionsMiddleware send, on a lean
handler's responses (errors included), HSTS only on secure requests, recomputed when the settings change."""

from __future__ import annotations

import httpx
import pytest
from django.test import override_settings

from llm_infra_django.asgi import LeanASGIHandler

LEAN_MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "llm_infra_django.middleware.SecurityHeadersMiddleware",
]
PRODUCTION = {
    "SECURE_HSTS_SECONDS": 31_536_000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    "SECURE_REFERRER_POLICY": "no-referrer, strict-origin",
}
HSTS = "max-age=31536000; includeSubDomains; preload"


async def _get(path: str, *, scheme: str = "http", headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=LeanASGIHandler(LEAN_MIDDLEWARE))
    async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("path", ["/async/ok", "/plain/ok", "/async/raise/bug", "/no/such/route"])
async def test_development_responses_carry_the_security_headers_but_no_hsts(path: str) -> None:
    response = await _get(path, scheme="https")

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize(
    ("scheme", "headers", "hsts"),
    [
        ("https", {}, HSTS),
        ("http", {"X-Forwarded-Proto": "https"}, HSTS),
        ("http", {}, None),
    ],
    ids=["tls", "behind-a-tls-proxy", "plain-http"],
)
async def test_production_sends_hsts_on_secure_requests_only(scheme: str, headers: dict, hsts: str | None) -> None:
    with override_settings(**PRODUCTION):
        response = await _get("/no/such/route", scheme=scheme, headers=headers)

    assert response.status_code == 404
    assert response.headers.get("Strict-Transport-Security") == hsts
    assert response.headers["Referrer-Policy"] == "no-referrer,strict-origin"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_the_headers_follow_a_settings_change() -> None:
    before = await _get("/async/ok", scheme="https")
    with override_settings(SECURE_HSTS_SECONDS=60, SECURE_CONTENT_TYPE_NOSNIFF=False, X_FRAME_OPTIONS="sameorigin"):
        during = await _get("/async/ok", scheme="https")
    after = await _get("/async/ok", scheme="https")

    assert during.headers["Strict-Transport-Security"] == "max-age=60"
    assert "X-Content-Type-Options" not in during.headers
    assert during.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert _without_request_id(before) == _without_request_id(after)


def _without_request_id(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "x-request-id"}
