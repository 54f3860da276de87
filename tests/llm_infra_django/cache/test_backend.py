"""RedisCache on a real Redis: JSON on the wire, prefixes and versions, SCAN-only deletes, counters, configuration."""

from __future__ import annotations

import datetime
from decimal import Decimal

import orjson
import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from llm_infra_django.cache import RedisCache

pytestmark = pytest.mark.redis


def _forbid(monkeypatch, raw_client, *commands):
    """Make the raw redis-py client raise if any of `commands` is sent."""

    def refuse(*args, **kwargs):
        raise AssertionError("forbidden Redis command")

    for command in commands:
        monkeypatch.setattr(raw_client, command, refuse)


def test_nested_values_are_stored_as_json_and_read_back(cache, redis_client, unique_prefix):
    # given
    value = {"service": {"slug": "chat", "price": Decimal("0.0020"), "versions": [1, 2, {"semver": "1.2.3"}]}}
    value["service"]["updated"] = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    # when
    cache.set("service:chat", value, 60)

    # then
    raw = redis_client.get(f"{unique_prefix}:1:service:chat")
    assert raw is not None and not raw.startswith(b"\x80"), "pickle protocol header on the wire"
    assert orjson.loads(raw)["service"]["slug"] == "chat"
    assert cache.get("service:chat") == value


def test_keys_are_prefixed_once_and_versioned(cache, redis_client, unique_prefix):
    # given
    cache.set("k", "v1", 60)
    cache.set("k", "v2", 60, version=2)

    # when
    stored = sorted(key.decode() for key in redis_client.scan_iter(match=f"{unique_prefix}*"))

    # then
    assert stored == [f"{unique_prefix}:1:k", f"{unique_prefix}:2:k"]
    assert cache.get("k") == "v1"
    assert cache.get("k", version=2) == "v2"
    assert cache.get("k", version=3) is None


def test_incr_version_moves_the_value_to_the_next_version(cache):
    # given
    cache.set("counter", {"n": 1}, 60)

    # when
    new_version = cache.incr_version("counter")

    # then
    assert new_version == 2
    assert cache.get("counter") is None
    assert cache.get("counter", version=2) == {"n": 1}


def test_django_cache_api_basics(cache):
    # given
    cache.set_many({"a": 1, "b": [2], "c": None}, 60)

    # when
    many = cache.get_many(["a", "b", "c", "missing"])

    # then
    assert many == {"a": 1, "b": [2], "c": None}
    assert cache.add("a", 5) is False
    assert cache.incr("a", 10) == 11
    assert cache.has_key("b") and not cache.has_key("missing")
    assert 0 < cache.ttl("b") <= 60
    assert cache.delete("b") is True and cache.get("b", "gone") == "gone"
    assert cache.get_or_set("lazy", lambda: {"computed": True}) == {"computed": True}
    assert cache.get("lazy") == {"computed": True}


def test_delete_pattern_removes_ten_thousand_keys_with_scan_in_batches(cache, monkeypatch):
    # given
    for start in range(0, 10_000, 1_000):
        cache.set_many({f"item:{n}": n for n in range(start, start + 1_000)}, 300)
    cache.set("other:1", "kept", 300)
    raw = cache.client.get_client(write=True)
    _forbid(monkeypatch, raw, "keys", "flushdb", "flushall")
    unlink_sizes: list[int] = []
    real_unlink = raw.unlink
    monkeypatch.setattr(raw, "unlink", lambda *keys: unlink_sizes.append(len(keys)) or real_unlink(*keys))

    # when
    deleted = cache.delete_pattern("item:*", itersize=500)

    # then
    assert deleted == 10_000
    # SCAN may return a key twice while the keyspace shrinks under it (UNLINK then counts it once): at least all
    assert sum(unlink_sizes) >= 10_000 and max(unlink_sizes) == 500
    assert cache.get("item:42") is None
    assert cache.get("other:1") == "kept"


def test_delete_pattern_matches_only_the_current_version(cache):
    # given
    cache.set("user:1", "v1", 60)
    cache.set("user:1", "v2", 60, version=2)

    # when
    deleted = cache.delete_pattern("user:*")

    # then
    assert deleted == 1
    assert cache.get("user:1", version=2) == "v2"


def test_keys_and_clear_use_scan_and_stay_inside_the_prefix(make_cache, redis_client, unique_prefix, monkeypatch):
    # given
    cache = make_cache()
    neighbour_key = f"{unique_prefix}-neighbour:1:x"
    redis_client.set(neighbour_key, b"1", ex=60)
    cache.set_many({"a:1": 1, "a:2": 2, "b:1": 3}, 60)
    cache.set("a:1", 1, 60, version=7)
    _forbid(monkeypatch, cache.client.get_client(write=True), "keys", "flushdb", "flushall")

    # when
    listed = sorted(cache.keys("a:*"))
    cache.clear()

    # then
    assert listed == ["a:1", "a:2"]
    assert list(redis_client.scan_iter(match=f"{unique_prefix}:*")) == []
    assert redis_client.get(neighbour_key) == b"1"
    redis_client.delete(neighbour_key)


def test_hits_and_misses_are_counted_by_alias(cache, cache_counts):
    # given
    before = cache_counts(cache.alias)
    cache.set("present", 1, 60)

    # when
    cache.get("present")
    cache.get("absent")
    cache.get_many(["present", "absent", "absent-too"])

    # then
    after = cache_counts(cache.alias)
    assert after["hit"] - before["hit"] == 2
    assert after["miss"] - before["miss"] == 3
    assert after["error"] == before["error"]


def test_alias_comes_from_the_caches_setting(redis_url, unique_prefix):
    # given
    config = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "llm_infra_django.cache.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": unique_prefix},
    }

    # when
    with override_settings(CACHES=config):
        alias = caches["shared"].alias

    # then
    assert alias == "shared"


def test_pickle_serializer_is_refused(redis_url):
    # given
    cache = RedisCache(redis_url, {"OPTIONS": {"SERIALIZER": "django_redis.serializers.pickle.PickleSerializer"}})

    # when / then
    with pytest.raises(ImproperlyConfigured, match="never unpickles"):
        cache.get("anything")


def test_ignore_exceptions_option_is_refused_in_favour_of_fail_open(redis_url):
    # when / then
    with pytest.raises(ImproperlyConfigured, match="FAIL_OPEN"):
        RedisCache(redis_url, {"OPTIONS": {"IGNORE_EXCEPTIONS": True}})
