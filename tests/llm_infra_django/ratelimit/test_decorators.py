"""`@ratelimit` on plain sync and async views, and `RateLimitMiddleware` (headers and path-prefix limits)."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient, Client, RequestFactory

from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW
from llm_infra_django.ratelimit.decorators import RequestLimit, ratelimit
from llm_infra_django.ratelimit.middleware import RateLimitMiddleware
from tests.llm_infra_django.ratelimit.conftest import DEAD_REDIS_URL, infra

pytestmark = pytest.mark.urls("tests.llm_infra_django.ratelimit.urls")


def _via_proxy(ip: str) -> dict[str, str]:
    """Headers of a request from `ip` through one proxy (`NUM_PROXIES=1`): the ASGI test client has no REMOTE_ADDR."""
    return {"X-Forwarded-For": ip}


def _assert_denied(response: Any, limit: int) -> None:
    assert response.status_code == 429, response.content
    assert response.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response["X-RateLimit-Limit"] == str(limit)
    assert response["X-RateLimit-Remaining"] == "0"
    assert int(response["X-RateLimit-Reset"]) > 0


def test_the_decorator_limits_a_sync_view(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra()
    client = Client(REMOTE_ADDR=client_ip)

    # when
    responses = [client.get("/plain/sync") for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert [r["X-RateLimit-Remaining"] for r in responses] == ["1", "0", "0"]
    assert responses[0]["X-RateLimit-Limit"] == "2"
    _assert_denied(responses[2], limit=2)


async def test_the_decorator_limits_an_async_view(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra(NUM_PROXIES=1)
    client, headers = AsyncClient(), _via_proxy(client_ip)

    # when
    responses = [await client.get("/plain/async", headers=headers) for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[1]["X-RateLimit-Remaining"] == "0"
    _assert_denied(responses[2], limit=2)


@pytest.mark.redis
async def test_the_async_decorator_limits_through_redis(settings: Any, redis_url: str, ip_keys_cleanup: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=redis_url, NUM_PROXIES=1)
    client, headers = AsyncClient(), _via_proxy(ip_keys_cleanup)

    # when
    responses = [await client.get("/plain/async", headers=headers) for _ in range(3)]

    # then
    assert [r.status_code for r in responses] == [200, 200, 429]
    _assert_denied(responses[2], limit=2)


def test_the_decorator_reads_the_rate_of_its_scope_per_request_and_hashes_header_keys(
    settings: Any, scope: str
) -> None:
    # given
    settings.LLM_INFRA = infra(THROTTLE_RATES={"plain_from_settings": "100/min"})
    client = Client()
    caller = f"client-{scope}"
    first = client.get("/plain/header", HTTP_X_CLIENT=caller)

    # when
    settings.LLM_INFRA = infra(THROTTLE_RATES={"plain_from_settings": "1/min"})
    lowered = [client.get("/plain/header", HTTP_X_CLIENT=caller) for _ in range(2)]
    without_header = [client.get("/plain/header").status_code for _ in range(3)]

    # then
    assert first.status_code == 200 and first["X-RateLimit-Limit"] == "100"
    assert [r.status_code for r in lowered] == [200, 429]
    assert lowered[0]["X-RateLimit-Limit"] == "1"
    assert without_header == [200, 200, 200]


async def test_an_async_fail_closed_view_answers_503_when_redis_is_down(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra(REDIS_URL=DEAD_REDIS_URL, NUM_PROXIES=1)

    # when
    response = await AsyncClient().get("/plain/async-fail-closed", headers=_via_proxy(client_ip))

    # then
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "1"


def test_a_callable_key_and_an_unknown_key_spec(settings: Any, scope: str) -> None:
    # given
    settings.LLM_INFRA = infra()

    @ratelimit(scope=scope, rate="1/min", key=lambda request: request.GET.get("who"))
    def view(request: HttpRequest) -> JsonResponse:
        return JsonResponse({})

    factory = RequestFactory()

    # when
    statuses = [view(factory.get("/", {"who": who})).status_code for who in ("a", "a", "b")]

    # then
    assert statuses == [200, 429, 200]
    with pytest.raises(ValueError, match="unknown rate limit key"):
        ratelimit(scope=scope, rate="1/min", key="cookie")
    with pytest.raises(ValueError, match="unknown rate limit algorithm"):
        ratelimit(scope=scope, rate="1/min", algorithm="fixed_window")


class ApiPathLimit(RateLimitMiddleware):
    path_limits = [("/limited/", RequestLimit(scope="limited_paths", rate="2/min", algorithm=SLIDING_WINDOW))]


PATH_LIMIT_MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "tests.llm_infra_django.ratelimit.test_decorators.ApiPathLimit",
    "llm_infra_django.middleware.ErrorEnvelopeMiddleware",
]


def test_the_middleware_limits_path_prefixes(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra()
    settings.MIDDLEWARE = PATH_LIMIT_MIDDLEWARE
    client = Client(REMOTE_ADDR=client_ip)

    # when
    limited = [client.get("/limited/sync") for _ in range(3)]
    elsewhere = client.get("/drf/unscoped")

    # then
    assert [r.status_code for r in limited] == [200, 200, 429]
    assert limited[0]["X-RateLimit-Remaining"] == "1"
    _assert_denied(limited[2], limit=2)
    assert limited[2]["X-Request-ID"]
    assert "X-RateLimit-Limit" not in elsewhere


async def test_the_middleware_limits_path_prefixes_on_the_async_stack(settings: Any, client_ip: str) -> None:
    # given
    settings.LLM_INFRA = infra(NUM_PROXIES=1)
    settings.MIDDLEWARE = PATH_LIMIT_MIDDLEWARE
    client, headers = AsyncClient(), _via_proxy(client_ip)

    # when
    limited = [await client.get("/limited/async", headers=headers) for _ in range(3)]

    # then
    assert [r.status_code for r in limited] == [200, 200, 429]
    _assert_denied(limited[2], limit=2)


def test_the_middleware_is_sync_and_async_capable_without_a_thread_hop() -> None:
    # given
    async def async_get_response(request: HttpRequest) -> JsonResponse:
        return JsonResponse({})

    # when
    async_middleware = RateLimitMiddleware(async_get_response)
    sync_middleware = RateLimitMiddleware(lambda request: JsonResponse({}))

    # then
    from asgiref.sync import iscoroutinefunction

    assert iscoroutinefunction(async_middleware)
    assert not iscoroutinefunction(sync_middleware)
