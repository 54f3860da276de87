"""`InfraClient`: django-redis' client with SCAN-only key iteration, batched pattern deletes and the stampede lock."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django_redis.client.default import DefaultClient, _main_exceptions, glob_escape
from django_redis.exceptions import ConnectionInterrupted
from django_redis.serializers.pickle import PickleSerializer
from django_redis.util import CacheKey

DEFAULT_SCAN_BATCH_SIZE = 1000
LOCK_SUFFIX = ":stampede-lock"

# Delete the lock only while it still holds our token, so a late holder never frees someone else's lock.
_RELEASE_LOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class UndecodableValueError(Exception):
    """A stored value the serializer cannot read (corrupt, or written by another serializer)."""


class InfraClient(DefaultClient):
    """The client behind `RedisCache`: never sends KEYS, never sends FLUSHDB, refuses pickle."""

    def __init__(self, server: str, params: dict[str, Any], backend: Any) -> None:
        super().__init__(server, params, backend)
        if isinstance(self._serializer, PickleSerializer):
            raise ImproperlyConfigured("llm_infra_django.cache.RedisCache never unpickles data read from Redis.")
        self.scan_batch_size = int(self._options.get("SCAN_BATCH_SIZE", DEFAULT_SCAN_BATCH_SIZE))

    def decode(self, value: bytes | int | str) -> Any:
        try:
            return super().decode(value)
        except ValueError as exc:
            raise UndecodableValueError(str(exc)) from exc

    def delete_pattern(
        self,
        pattern: str,
        version: int | None = None,
        prefix: str | None = None,
        client: Any = None,
        itersize: int | None = None,
    ) -> int:
        """Delete the keys matching a glob `pattern` (prefixed and versioned like any key).

        Keys are found with SCAN and removed with one UNLINK per `itersize` keys, so memory stays bounded and
        Redis is never blocked by KEYS or a huge DEL. Returns the number of keys removed.
        """
        if client is None:
            client = self.get_client(write=True)
        match = self.make_pattern(pattern, version=version, prefix=prefix)
        batch_size = itersize or self.scan_batch_size
        deleted = 0
        batch: list[bytes] = []
        try:
            for key in client.scan_iter(match=match, count=batch_size):
                batch.append(key)
                if len(batch) >= batch_size:
                    deleted += client.unlink(*batch)
                    batch.clear()
            if batch:
                deleted += client.unlink(*batch)
        except _main_exceptions as exc:
            raise ConnectionInterrupted(connection=client) from exc
        return deleted

    def iter_keys(
        self,
        search: str,
        itersize: int | None = None,
        client: Any = None,
        version: int | None = None,
    ) -> Iterator[str]:
        """The keys (without prefix and version) matching a glob, found with SCAN.

        Unlike django-redis' default reverse function this works when KEY_PREFIX itself contains colons.
        """
        if client is None:
            client = self.get_client(write=False)
        version = self._backend.version if version is None else version
        head = self._backend.key_func("", self._backend.key_prefix, version)
        match = self.make_pattern(search, version=version)
        for item in client.scan_iter(match=match, count=itersize or self.scan_batch_size):
            key = item.decode() if isinstance(item, bytes) else item
            yield key[len(head) :] if key.startswith(head) else self.reverse_key(key)

    def keys(self, search: str, version: int | None = None, client: Any = None) -> list[str]:
        """Like django-redis' `keys`, but through SCAN: KEYS blocks Redis for as long as it runs."""
        return list(self.iter_keys(search, client=client, version=version))

    def clear(self, client: Any = None) -> None:
        """Delete this cache's keys (its KEY_PREFIX, every version); other data in the database is left alone."""
        everything = CacheKey(self._backend.key_func("*", glob_escape(self._backend.key_prefix), "*"))
        self.delete_pattern(everything, client=client)

    def lock_key(self, key: str, version: int | None = None) -> CacheKey:
        return CacheKey(self.make_key(key, version=version) + LOCK_SUFFIX)

    def acquire_lock(self, key: str, token: str, timeout_ms: int, version: int | None = None) -> bool:
        """`SET lock token NX PX timeout`: True when this caller now holds the stampede lock of `key`."""
        client = self.get_client(write=True)
        try:
            return bool(client.set(self.lock_key(key, version), token, nx=True, px=timeout_ms))
        except _main_exceptions as exc:
            raise ConnectionInterrupted(connection=client) from exc

    def release_lock(self, key: str, token: str, version: int | None = None) -> bool:
        """Free the stampede lock of `key` if `token` still holds it."""
        client = self.get_client(write=True)
        try:
            return bool(client.eval(_RELEASE_LOCK, 1, self.lock_key(key, version), token))
        except _main_exceptions as exc:
            raise ConnectionInterrupted(connection=client) from exc
