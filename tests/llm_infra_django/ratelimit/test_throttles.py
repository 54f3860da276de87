"""DRF throttles over HTTP (Django test client): headers on every limited response, rates read per request, each
identity source, and Redis failure handling."""

from __future__ import annotations

import time
from typing import Any

import pytest
import structlog
from django.test import Client

from llm_infra_django.ratelimit.identity import hashed
from tests.llm_infra_django.ratelimit.conftest import DEAD_REDIS_URL, infra

pytestmark = pytest.mark.urls("tests.llm_infra_django.ratelimit.urls")

RATELIMIT_MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "llm_infra_django.ratelimit.middleware.RateLimitMiddleware",
    "llm_infra_django.middleware.ErrorEnvelopeMiddleware",
]


def _rates(settings: Any, **rates: str | None) -> None:
    settings.LLM_INFRA = infra(THROTTLE_RATES=rates)


def _assert_limit_headers(response: Any, limit: int, remaining: int) -> None:
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == str(remaining)
    assert time.time() - 1 <= int(response["X-RateLimit-Reset"]) <= time.time() + 61


def _assert_throttled(response: Any, max_retry_after: int) -> None:
    assert response.status_code == 429, response.content
    body = response.json()
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert body["request_id"] == response["X-Request-ID"]
    assert 1 <= int(response["Retry-After"]) <= max_retry_after
    assert body["error"]["details"]["retry_after"] == int(response["Retry-After"])


def test_token_bucket_throttle_sets_headers_on_allowed_and_denied_responses(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, bucket="2/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    responses = [client.get("/drf/bucket") for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 429]
    _assert_limit_headers(responses[0], 2, 1)
    _assert_limit_headers(responses[1], 2, 0)
    _assert_limit_headers(responses[2], 2, 0)
    _assert_throttled(responses[2], max_retry_after=30)
    assert "Retry-After" not in responses[0]


def test_the_middleware_adds_the_headers_to_views_without_the_mixin(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, bucket="1/min")
    settings.MIDDLEWARE = RATELIMIT_MIDDLEWARE
    client = Client(REMOTE_ADDR=client_ip)

    # when
    allowed, denied = client.get("/drf/bucket-no-mixin"), client.get("/drf/bucket-no-mixin")

    # then
    assert allowed.status_code == 200
    _assert_limit_headers(allowed, 1, 0)
    _assert_throttled(denied, max_retry_after=60)
    _assert_limit_headers(denied, 1, 0)


def test_a_changed_rate_applies_to_the_next_request(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, bucket="100/min")
    client = Client(REMOTE_ADDR=client_ip)
    first = client.get("/drf/bucket")

    # when
    _rates(settings, bucket="1/min")
    second, third = client.get("/drf/bucket"), client.get("/drf/bucket")
    _rates(settings, bucket=None)
    unlimited = client.get("/drf/bucket")

    # then
    assert first["X-RateLimit-Limit"] == "100"
    assert second.status_code == 200 and second["X-RateLimit-Limit"] == "1"
    assert third.status_code == 429
    assert unlimited.status_code == 200 and "X-RateLimit-Limit" not in unlimited


def test_sliding_window_throttle_denies_past_the_limit(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, window="3/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    responses = [client.get("/drf/window") for _ in range(5)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0", "0"]
    _assert_throttled(responses[-1], max_retry_after=60)


def test_the_tightest_of_two_throttles_is_reported(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, bucket="5/min", window="2/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    first = client.get("/drf/two-limits")

    # then
    assert first["X-RateLimit-Limit"] == "2"
    assert first["X-RateLimit-Remaining"] == "1"


def test_scoped_throttle_limits_only_views_with_a_scope(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, scoped="1/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    scoped = [client.get("/drf/scoped").status_code for _ in range(2)]
    unscoped = [client.get("/drf/unscoped") for _ in range(3)]

    # then
    assert scoped == [200, 429]
    assert all(r.status_code == 200 and "X-RateLimit-Limit" not in r for r in unscoped)


def test_tenant_throttle_limits_each_tenant_separately(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra(
        THROTTLE_RATES={"tenant": "1/min"},
        TENANT_RESOLVER="tests.llm_infra_django.ratelimit.views.tenant_from_header",
    )
    client = Client()

    # when
    acme = [client.get("/drf/tenant", HTTP_X_TENANT=f"acme-{scope}").status_code for _ in range(2)]
    globex = client.get("/drf/tenant", HTTP_X_TENANT=f"globex-{scope}").status_code
    no_tenant = [client.get("/drf/tenant").status_code for _ in range(3)]

    # then
    assert acme == [200, 429]
    assert globex == 200
    assert no_tenant == [200, 200, 200]


def test_api_key_throttle_uses_the_key_id_or_a_hash_of_the_credential(settings: Any, scope: str) -> None:
    # given
    _rates(settings, api_key="1/min")
    client = Client()
    secret = f"mk_{scope}_S3cr3tValue0123456789"

    # when
    with structlog.testing.capture_logs() as logs:
        by_secret = [client.get("/drf/api-key", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code for _ in range(2)]
    other_secret = client.get("/drf/api-key", HTTP_AUTHORIZATION=f"Bearer {secret}x").status_code
    by_id = [client.get("/drf/api-key", HTTP_X_TEST_KEY=f"id-{scope}").status_code for _ in range(2)]
    anonymous = [client.get("/drf/api-key").status_code for _ in range(2)]

    # then
    assert by_secret == [200, 429]
    assert other_secret == 200
    assert by_id == [200, 429]
    assert anonymous == [200, 200]
    denial = next(log for log in logs if log["event"] == "ratelimit_denied")
    assert denial["ratelimit_key"] == f"api_key:keyhash:{hashed(secret)}"
    assert secret not in repr(logs)


def test_user_throttle_limits_users_and_falls_back_to_the_ip(settings: Any, scope: str, client_ip: str) -> None:
    # given
    _rates(settings, user="1/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    alice = [client.get("/drf/user", HTTP_X_TEST_USER=f"alice-{scope}").status_code for _ in range(2)]
    bob = client.get("/drf/user", HTTP_X_TEST_USER=f"bob-{scope}").status_code
    anonymous = [client.get("/drf/user").status_code for _ in range(2)]

    # then
    assert alice == [200, 429]
    assert bob == 200
    assert anonymous == [200, 429]


def test_user_throttle_limits_each_api_key_apart_from_its_user(settings: Any, scope: str, client_ip: str) -> None:
    # given two keys acting for the same user (a key may also act for no user at all)
    _rates(settings, user="1/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    first = [client.get("/drf/user", HTTP_X_TEST_KEY=f"first-{scope}").status_code for _ in range(2)]
    second = client.get("/drf/user", HTTP_X_TEST_KEY=f"second-{scope}").status_code

    # then
    assert first == [200, 429]
    assert second == 200


def test_anon_throttle_skips_authenticated_requests(settings: Any, scope: str, client_ip: str) -> None:
    # given
    _rates(settings, anon="1/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when
    anonymous = [client.get("/drf/anon").status_code for _ in range(2)]
    authenticated = [client.get("/drf/anon", HTTP_X_TEST_USER=f"u-{scope}").status_code for _ in range(2)]

    # then
    assert anonymous == [200, 429]
    assert authenticated == [200, 200]


def test_anon_throttle_trusts_only_num_proxies_forwarded_entries(settings: Any, client_ip: str) -> None:
    # given: one trusted proxy at REMOTE_ADDR appending the client address it saw
    settings.LLM_INFRA = infra(THROTTLE_RATES={"anon": "1/min"}, NUM_PROXIES=1)
    proxy = Client(REMOTE_ADDR="192.0.2.1")

    # when: clients behind the proxy, one spoofing extra entries
    first = proxy.get("/drf/anon", HTTP_X_FORWARDED_FOR=client_ip)
    spoofed = proxy.get("/drf/anon", HTTP_X_FORWARDED_FOR=f"203.0.113.9, {client_ip}")
    other = proxy.get("/drf/anon", HTTP_X_FORWARDED_FOR=client_ip.rsplit(".", 1)[0] + ".255")

    # then
    assert first.status_code == 200
    assert spoofed.status_code == 429
    assert other.status_code == 200


def test_forwarded_for_is_ignored_without_trusted_proxies(settings: Any, client_ip: str) -> None:
    # given
    _rates(settings, anon="1/min")
    client = Client(REMOTE_ADDR=client_ip)

    # when: a client rotating spoofed X-Forwarded-For values
    statuses = [client.get("/drf/anon", HTTP_X_FORWARDED_FOR=f"198.51.100.{i}").status_code for i in range(3)]

    # then
    assert statuses == [200, 429, 429]


def test_redis_down_fails_open_by_default_for_throttles(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra(THROTTLE_RATES={"bucket": "1/min"}, REDIS_URL=DEAD_REDIS_URL)
    client = Client(REMOTE_ADDR=client_ip)

    # when
    responses = [client.get("/drf/bucket") for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[-1]["X-RateLimit-Limit"] == "1"
    assert "X-RateLimit-Remaining" not in responses[-1]


def test_a_fail_closed_throttle_answers_503_when_redis_is_down(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra(THROTTLE_RATES={"bucket": "1/min"}, REDIS_URL=DEAD_REDIS_URL)

    # when
    response = Client(REMOTE_ADDR=client_ip).get("/drf/fail-closed")

    # then
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "1"


@pytest.mark.redis
def test_throttles_share_the_limit_through_redis(settings: Any, redis_url: str, ip_keys_cleanup: str) -> None:
    # given
    settings.LLM_INFRA = infra(THROTTLE_RATES={"bucket": "2/min"}, REDIS_URL=redis_url)
    clients = [Client(REMOTE_ADDR=ip_keys_cleanup) for _ in range(3)]

    # when
    responses = [client.get("/drf/bucket") for client in clients]

    # then
    assert [r.status_code for r in responses] == [200, 200, 429]
    _assert_limit_headers(responses[1], 2, 0)
    _assert_throttled(responses[2], max_retry_after=30)


@pytest.mark.redis
def test_api_key_limits_in_redis_never_contain_the_secret(
    settings: Any, redis_url: str, redis_client: Any, scope: str
) -> None:
    # given
    settings.LLM_INFRA = infra(THROTTLE_RATES={"api_key": "1/min"}, REDIS_URL=redis_url)
    secret = f"mk_{scope}_S3cr3tValue0123456789"
    name = f"rl:{{api_key:keyhash:{hashed(secret)}}}:tb"

    # when
    try:
        statuses = [Client().get("/drf/api-key", HTTP_AUTHORIZATION=f"Bearer {secret}").status_code for _ in range(2)]
        stored = redis_client.exists(name)
        leaked = list(redis_client.scan_iter(match=f"*{secret}*", count=1000))
    finally:
        redis_client.delete(name)

    # then
    assert statuses == [200, 429]
    assert stored == 1
    assert leaked == []
