"""The ledger's Redis stream: with Redis, a usage record is appended to a stream in the same round trip as the
settlement (so the proxy's hot path touches no SQL), and every web process drains the stream into the database in
large batches. A record the proxy acknowledged is in Redis (durable as Redis is: run it with AOF in production)
and reaches the database once the database answers; pending entries of a dead process are claimed by another.
Without Redis the proxy writes records itself (`ledger.LedgerWriter`)."""

from __future__ import annotations

import asyncio
import contextvars
import json
import os
import socket
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from django.db import InterfaceError, OperationalError, connection
from redis.exceptions import RedisError, ResponseError

from apps.consumption.ledger import Entry, _executor, write_with_reconnect
from llm_infra_django.redis import get_async_redis, get_redis

logger = structlog.get_logger(__name__)

GROUP = "ledger-writers"
BATCH = 500
CLAIM_IDLE_MS = 60_000
LINGER_SECONDS = 0.2
_consumer = f"{socket.gethostname()}-{os.getpid()}"
_drainers: dict[int, asyncio.Task[None]] = {}
_groups: set[str] = set()


def stream_key() -> str:
    """One stream per database, so that processes writing to different databases never mix their records."""
    return f"ledger:{{{connection.settings_dict['NAME']}}}:records"


def encode(entry: Entry) -> dict[str, str]:
    data = {name: getattr(entry, name) for name in Entry.__dataclass_fields__}
    data["quota_periods"] = {k: [v[0].isoformat(), v[1].isoformat()] for k, v in entry.quota_periods.items()}
    return {"e": json.dumps(data, default=str)}


def decode(fields: dict[Any, Any]) -> Entry:
    raw = fields.get(b"e") or fields.get("e")
    data = json.loads(raw)
    data["cost"] = Decimal(data["cost"])
    data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["finished_at"] = datetime.fromisoformat(data["finished_at"])
    data["quota_periods"] = {k: (datetime.fromisoformat(v[0]), datetime.fromisoformat(v[1]))
                             for k, v in data["quota_periods"].items()}
    return Entry(**data)


def _ensure_group(client: Any, key: str) -> None:
    if key in _groups:
        return
    try:
        client.xgroup_create(key, GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise
    _groups.add(key)


def drain_once(count: int = BATCH, *, consumer: str | None = None) -> int:
    """Write one batch of stream entries to the database (this consumer's unacknowledged ones first, then new
    ones, then those a dead consumer left idle); returns how many were written. Synchronous: for the drainer's
    thread, the periodic task and tests."""
    client = get_redis()
    if client is None:
        return 0
    key = stream_key()
    _ensure_group(client, key)
    name = consumer or _consumer
    messages = []
    for start in ("0", ">"):
        found = client.xreadgroup(GROUP, name, {key: start}, count=count)
        messages = found[0][1] if found else []
        messages = [(mid, fields) for mid, fields in messages if fields]
        if messages:
            break
    if not messages:
        claimed = client.xautoclaim(key, GROUP, name, min_idle_time=CLAIM_IDLE_MS, start_id="0-0", count=count)
        messages = [(mid, fields) for mid, fields in (claimed[1] if claimed else []) if fields]
    if not messages:
        return 0
    try:
        write_with_reconnect([decode(fields) for _, fields in messages])
    except (OperationalError, InterfaceError):
        raise  # the database is away: keep everything pending and try again later
    except Exception:
        _write_one_by_one(client, key, messages)
    ids = [mid for mid, _ in messages]
    client.xack(key, GROUP, *ids)
    client.xdel(key, *ids)
    return len(ids)


def _write_one_by_one(client: Any, key: str, messages: list[tuple[Any, Any]]) -> None:
    """A batch the database refused: write its entries one by one; an entry that cannot be written at all goes to
    the dead-letter stream (logged), so one bad record never blocks the ledger."""
    for message_id, fields in messages:
        try:
            write_with_reconnect([decode(fields)])
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            logger.exception("ledger_record_dead_lettered", message_id=str(message_id), error=type(exc).__name__)
            client.xadd(f"{key}:dead", fields)


async def _drain_forever() -> None:
    loop = asyncio.get_running_loop()
    client = get_async_redis()
    if client is None:
        return
    key = await loop.run_in_executor(_executor, stream_key)
    while True:
        try:
            written = await loop.run_in_executor(_executor, drain_once)
            if written:
                # Let a few more records gather: one larger batch costs the database less than many small ones.
                await asyncio.sleep(LINGER_SECONDS if written < BATCH else 0)
                continue
            # Nothing to write: wait (without consuming) for the next entry, then read it in the next round.
            await client.xread({key: "$"}, count=1, block=250)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError, Exception) as exc:  # the database or Redis is down: retry, lose nothing
            logger.exception("ledger_drain_failed", error=type(exc).__name__)
            await asyncio.sleep(1)


def ensure_drainer() -> None:
    """Start this event loop's drainer once (it outlives requests, so it runs in a context of its own)."""
    loop = asyncio.get_running_loop()
    task = _drainers.get(id(loop))
    if task is None or task.done():
        _drainers[id(loop)] = loop.create_task(_drain_forever(), context=contextvars.Context())
