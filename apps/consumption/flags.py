"""Revocation and suspension flags: set by the services that revoke a key or suspend a tenant, read by admission (in
its script) and by every request that skips admission. One rule for reading them when Redis fails: the database
decides (a revoked or expired key is refused), so a Redis outage never revives a key."""

from __future__ import annotations

from typing import Any

import structlog
from django.utils import timezone
from redis.exceptions import RedisError

from apps.consumption.keys import KeyInfo
from apps.consumption.local_admission import local
from apps.consumption.protocol import revoked_key, suspended_key
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.redis import get_async_redis, get_redis

logger = structlog.get_logger(__name__)
# A flag outlives any key's use (a revoked key never becomes valid again).
REVOKED_TTL_S = 400 * 86_400


def mark_revoked(tenant_id: str, key_id: str) -> None:
    """Make every worker refuse the key from its next request on (called inside the revoking transaction)."""
    client = get_redis()
    if client is None:
        local.flags.add(revoked_key(tenant_id, key_id))
        return
    client.set(revoked_key(tenant_id, key_id), "1", ex=REVOKED_TTL_S)


def set_tenant_suspended(tenant_id: str, suspended: bool) -> None:
    name = suspended_key(tenant_id)
    client = get_redis()
    if client is None:
        (local.flags.add if suspended else local.flags.discard)(name)
        return
    if suspended:
        client.set(name, "1")
    else:
        client.delete(name)


def _ended_in_database(key_id: str) -> bool:
    """The database's word on a key when Redis cannot be asked: gone, revoked or expired."""
    from apps.consumption.models import ApiKey

    row = ApiKey.objects.filter(pk=key_id).values("revoked_at", "expires_at").first()
    now = timezone.now()
    return row is None or any(moment is not None and moment <= now for moment in (row["revoked_at"], row["expires_at"]))


def _failed(key: KeyInfo, exc: Exception) -> None:
    logger.warning("revocation_flag_unreadable", key_id=key.id, error=type(exc).__name__)


def is_revoked(key: KeyInfo) -> bool:
    """Whether the key was revoked after this process cached it (see the module's docstring)."""
    name = revoked_key(key.tenant_id, key.id)
    client = get_redis()
    if client is None:
        return name in local.flags
    try:
        return bool(client.exists(name))
    except (RedisError, OSError) as exc:
        _failed(key, exc)
        return _ended_in_database(key.id)


async def ais_revoked(key: KeyInfo) -> bool:
    """`is_revoked` for the event loop."""
    name = revoked_key(key.tenant_id, key.id)
    client: Any = get_async_redis()
    if client is None:
        return name in local.flags
    try:
        return bool(await client.exists(name))
    except (RedisError, OSError) as exc:
        _failed(key, exc)
        return await database_sync_to_async(_ended_in_database)(key.id)
