"""Redis down: fail-open (logged, counted, treated as misses and no-ops) versus fail-closed (CacheError)."""

from __future__ import annotations

import logging

import pytest
import redis

from llm_infra_django.cache import RedisCache
from llm_infra_django.errors import CacheError

DEAD_REDIS = "redis://127.0.0.1:1/0"


def _dead_cache(unique_prefix: str, *, fail_open: bool) -> RedisCache:
    options = {"ALIAS": unique_prefix, "FAIL_OPEN": fail_open, "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5}
    return RedisCache(DEAD_REDIS, {"KEY_PREFIX": unique_prefix, "OPTIONS": options})


def _cache_warnings(caplog) -> list[dict]:
    return [
        record.msg
        for record in caplog.records
        if isinstance(record.msg, dict) and record.msg.get("event") == "cache_operation"
    ]


def test_fail_open_treats_an_unreachable_redis_as_misses_and_no_ops(unique_prefix, cache_counts, caplog):
    # given
    cache = _dead_cache(unique_prefix, fail_open=True)
    caplog.set_level(logging.WARNING)

    # when
    results = {
        "get": cache.get("k", "default"),
        "set": cache.set("k", 1),
        "add": cache.add("k", 1),
        "get_many": cache.get_many(["a", "b"]),
        "set_many": cache.set_many({"a": 1}),
        "delete": cache.delete("k"),
        "has_key": cache.has_key("k"),
        "delete_pattern": cache.delete_pattern("*"),
        "keys": cache.keys("*"),
        "get_or_set": cache.get_or_set("k", lambda: "computed"),
    }

    # then
    assert results == {
        "get": "default",
        "set": False,
        "add": False,
        "get_many": {},
        "set_many": ["a"],
        "delete": False,
        "has_key": False,
        "delete_pattern": 0,
        "keys": [],
        "get_or_set": "computed",
    }
    assert cache_counts(unique_prefix)["error"] >= 10
    logged = _cache_warnings(caplog)
    assert {"get", "set", "delete_pattern", "lock"} <= {line["operation"] for line in logged}
    assert all("ConnectionError" in line["error"] for line in logged)


def test_fail_closed_raises_cache_error(unique_prefix, cache_counts):
    # given
    cache = _dead_cache(unique_prefix, fail_open=False)
    computed = []

    # when / then
    with pytest.raises(CacheError) as raised:
        cache.get("k")
    assert raised.value.status_code == 500
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    assert raised.value.details["operation"] == "get"
    with pytest.raises(CacheError):
        cache.set("k", 1)
    with pytest.raises(CacheError):
        cache.get_or_set("k", lambda: computed.append(1))
    with pytest.raises(CacheError):
        cache.keys("*")
    assert computed == []
    assert cache_counts(unique_prefix)["error"] == 4


def test_a_redis_stopped_mid_test_fails_open_then_recovers(redis_server, unique_prefix):
    # given
    cache = RedisCache(
        redis_server.url, {"KEY_PREFIX": unique_prefix, "OPTIONS": {"ALIAS": unique_prefix, "SOCKET_TIMEOUT": 1}}
    )
    cache.set("k", {"v": 1}, 60)
    assert cache.get("k") == {"v": 1}

    # when
    redis_server.stop()
    while_down = (cache.get("k", "fallback"), cache.get_or_set("other", lambda: "computed", 60))
    redis_server.start()

    # then
    assert while_down == ("fallback", "computed")
    assert cache.set("k", {"v": 2}, 60) is True
    assert cache.get("k") == {"v": 2}


def test_a_redis_stopped_mid_test_raises_when_failing_closed(redis_server, unique_prefix):
    # given
    cache = RedisCache(
        redis_server.url, {"KEY_PREFIX": unique_prefix, "OPTIONS": {"ALIAS": unique_prefix, "FAIL_OPEN": False}}
    )
    cache.set("k", 1, 60)

    # when
    redis_server.stop()

    # then
    with pytest.raises(CacheError):
        cache.get("k")


def test_a_value_that_is_not_json_is_a_miss_when_failing_open(redis_server, unique_prefix, cache_counts):
    # given a pickled value left behind by another serializer
    cache = RedisCache(redis_server.url, {"KEY_PREFIX": unique_prefix, "OPTIONS": {"ALIAS": unique_prefix}})
    cache.client.get_client().set(f"{unique_prefix}:1:k", b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01.")

    # when
    value = cache.get_or_set("k", lambda: "fresh", 60)

    # then
    assert value == "fresh"
    assert cache.get("k") == "fresh"
    assert cache_counts(unique_prefix)["error"] >= 1
