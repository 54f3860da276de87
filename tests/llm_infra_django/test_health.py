"""/healthz and /readyz: each dependency with its latency, 503 naming the failing part."""

from __future__ import annotations

import os

import pytest
from django.test import Client, override_settings

DEAD_REDIS = "redis://127.0.0.1:1/0"


def redis_cache(location: str) -> dict:
    return {
        "default": {
            "BACKEND": "llm_infra_django.cache.RedisCache",
            "LOCATION": location,
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        }
    }


@pytest.mark.django_db
def test_healthz_is_alive() -> None:
    response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_ok_with_everything_up() -> None:
    response = Client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["cache"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "skipped"


@pytest.mark.django_db
def test_readyz_503_names_the_cache_when_redis_is_dead() -> None:
    with override_settings(CACHES=redis_cache(DEAD_REDIS)):
        response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["failing"] == ["cache"]
    assert body["checks"]["cache"]["status"] == "fail"
    assert "Connection" in body["checks"]["cache"]["error"]
    assert body["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
@pytest.mark.redis
def test_readyz_ok_with_a_live_redis_cache() -> None:
    with override_settings(CACHES=redis_cache(os.environ["REDIS_URL"])):
        response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["cache"]["status"] == "ok"


@pytest.mark.django_db
def test_readyz_503_names_the_broker_when_it_is_unreachable() -> None:
    with override_settings(CELERY_BROKER_URL="amqp://guest:guest@127.0.0.1:1//", CELERY_TASK_ALWAYS_EAGER=False):
        response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["failing"] == ["broker"]


@pytest.mark.django_db
@pytest.mark.redis
def test_readyz_ok_with_a_live_redis_broker() -> None:
    with override_settings(CELERY_BROKER_URL=os.environ["REDIS_URL"], CELERY_TASK_ALWAYS_EAGER=False):
        response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"]["status"] == "ok"
