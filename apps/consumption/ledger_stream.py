"""The ledger's Redis stream: with Redis, a usage record is appended to a stream in the same round trip as the
settlement (so the proxy's hot path touches no SQL), and every web process drains the stream into the database in
large batches. A record the proxy acknowledged is in Redis and reaches the database once the database answers;
pending entries of a dead process are claimed by another. Should Redis lose the stream (a restart without
persistence, a flush), each process still holds the records it appended and has not seen written (its outbox) and
writes them itself — the ledger is idempotent on request ids, so nothing is counted twice. Without Redis the proxy
writes records itself (`ledger.LedgerWriter`)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import structlog
from django.db import InterfaceError, OperationalError, connection
from redis.exceptions import RedisError, ResponseError

from apps.consumption.ledger import Entry, in_ledger_thread, write_with_reconnect
from apps.consumption.protocol import CallKeys, SettleArgs
from llm_infra_django.background import spawn
from llm_infra_django.redis import get_async_redis, get_redis

logger = structlog.get_logger(__name__)

GROUP = "ledger-writers"
BATCH = 500
CLAIM_IDLE_MS = 60_000
LINGER_SECONDS = 0.2
_consumer = f"{socket.gethostname()}-{os.getpid()}"
_drainers: dict[int, asyncio.Task[None]] = {}
_groups: set[str] = set()
# Records this process appended and has not yet seen written to the database, by request id.
OUTBOX_LIMIT = 100_000
OUTBOX_CHECK_SECONDS = 1.0
_outbox: OrderedDict[str, Sent] = OrderedDict()
_outbox_lock = threading.Lock()


def stream_key() -> str:
    """One stream per database, so that processes writing to different databases never mix their records."""
    return f"ledger:{{{connection.settings_dict['NAME']}}}:records"


_FIELDS = tuple(Entry.__dataclass_fields__)


def encode(entry: Entry) -> dict[str, bytes]:
    """A record as the stream holds it: one JSON field (datetimes in ISO 8601, the cost as a decimal string)."""
    return {"e": orjson.dumps({name: getattr(entry, name) for name in _FIELDS}, default=str)}


def decode(fields: dict[Any, Any]) -> Entry:
    raw = fields[b"e"] if b"e" in fields else fields["e"]
    data = orjson.loads(raw)
    data["cost"] = Decimal(data["cost"])
    data["started_at"] = datetime.fromisoformat(data["started_at"])
    data["finished_at"] = datetime.fromisoformat(data["finished_at"])
    data["quota_periods"] = {
        k: (datetime.fromisoformat(v[0]), datetime.fromisoformat(v[1])) for k, v in data["quota_periods"].items()
    }
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
    try:
        messages = _read(client, key, name, count)
    except ResponseError as exc:
        if "NOGROUP" not in str(exc):
            raise
        # Redis lost the group (it restarted empty, or the stream was deleted): make it again and read on.
        _groups.discard(key)
        _ensure_group(client, key)
        messages = _read(client, key, name, count)
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
    # Acknowledged and deleted together (MULTI): an entry acknowledged but left in the stream would sit there for
    # ever (a reply lost to a timeout is enough), as would one deleted but still pending.
    pipe = client.pipeline(transaction=True)
    pipe.xack(key, GROUP, *ids)
    pipe.xdel(key, *ids)
    pipe.execute()
    return len(ids)


def _read(client: Any, key: str, consumer: str, count: int) -> list[tuple[Any, Any]]:
    """This consumer's pending entries (delivered before, not acknowledged), else new ones."""
    for start in ("0", ">"):
        found = client.xreadgroup(GROUP, consumer, {key: start}, count=count)
        messages = [(mid, fields) for mid, fields in (found[0][1] if found else []) if fields]
        if messages:
            return messages
    return []


# --- The outbox: what this process appended, kept until the database has it -----------------------------------


@dataclass
class Sent:
    """A record this process appended to the stream, with the keys and usage of its settlement (to charge it again
    should Redis lose it). `state`: "streamed" (in the stream of `epoch`), "write" (lost with its Redis data set: to
    be charged again to the counters Redis holds now, then written to the database by this process), "done"."""

    entry: Entry
    keys: CallKeys
    usage: SettleArgs
    message_id: str
    epoch: str
    state: str = "streamed"
    charged: bool = False  # charged again after the loss (a retried check must not charge twice)


def epoch_key(key: str) -> str:
    """The key of the stream's epoch token: set once (NX) by the first writer of a Redis data set, so a token that
    changed or vanished means Redis lost what it held (same hash tag as the stream)."""
    return key.rsplit(":", 1)[0] + ":epoch"


def remember(sent: Sent) -> None:
    """Keep a record appended to the stream until the database is known to hold it."""
    with _outbox_lock:
        _outbox[sent.entry.request_id] = sent
        if len(_outbox) > OUTBOX_LIMIT:
            dropped, _ = _outbox.popitem(last=False)
            logger.warning("ledger_outbox_full", dropped=dropped, limit=OUTBOX_LIMIT)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _id(value: Any) -> tuple[int, int]:
    milliseconds, _, sequence = _text(value).partition("-")
    return int(milliseconds), int(sequence or 0)


def _in_state(state: str) -> list[Sent]:
    with _outbox_lock:
        return [sent for sent in _outbox.values() if sent.state == state]


def check_outbox() -> int:
    """Forget the outbox records the stream's readers wrote to the database. Records appended to a Redis data set
    that is gone since (another epoch) and not in the database yet are charged again to the counters Redis holds now
    (kept pending for those it does not hold: admission seeds them), then written to the database directly
    (idempotent). Returns how many records this wrote. Synchronous, for the drainer's thread; raises when Redis or
    the database fails, forgetting nothing."""
    from apps.consumption.admission import settle_sync

    client = get_redis()
    if client is None:
        return 0
    with _outbox_lock:
        if not _outbox:
            return 0
    key = stream_key()
    client.set(epoch_key(key), uuid.uuid4().hex, nx=True)
    epoch = _text(client.get(epoch_key(key)))
    lost = [sent for sent in _in_state("streamed") if sent.epoch != epoch]
    for sent in lost:
        sent.state = "write"
    if lost:
        logger.warning("ledger_stream_lost", records=len(lost))
    fresh: set[str] = set()
    if to_write := _in_state("write"):
        # Charged before written, and only if the database does not hold it yet (a reader wrote it before the loss:
        # it was counted then, and seeds read since hold it). A counter seeded in between then counts the call once
        # either way: from the charge, or — missing when the charge came — from the pending charge its seed adds
        # unless the seed's snapshot holds the record (see settle.lua, admission.lua).
        recorded = _recorded({sent.entry.request_id for sent in to_write})
        for sent in to_write:
            if sent.entry.request_id in recorded:
                sent.state = "done"
            elif not sent.charged:
                settle_sync(sent.keys, replace(sent.usage, charge_missing=True))
                sent.charged = True
        if pending := [sent for sent in to_write if sent.state == "write"]:
            fresh = write_with_reconnect([sent.entry for sent in pending])
            for sent in pending:
                sent.state = "done"
    with _outbox_lock:
        for request_id in [rid for rid, sent in _outbox.items() if sent.state == "done"]:
            del _outbox[request_id]
    _forget_written(client, key)
    return len(fresh)


def _recorded(request_ids: set[str]) -> set[str]:
    from apps.consumption.models import UsageRecord

    return set(UsageRecord.objects.filter(request_id__in=request_ids).values_list("request_id", flat=True))


def _forget_written(client: Any, key: str) -> None:
    """Drop the outbox records whose stream entries were delivered to a reader and acknowledged (readers
    acknowledge only after the database committed them)."""
    try:
        groups = client.xinfo_groups(key)
    except ResponseError:
        return  # no stream (yet)
    group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
    if group is None:
        return
    written = _id(group["last-delivered-id"])
    if int(group.get("pending") or 0):
        # Another reader may acknowledge the last pending entries between the two calls: then none is pending.
        oldest = client.xpending(key, GROUP).get("min")
        if oldest is not None:
            oldest_pending = _id(oldest)
            written = min(written, (oldest_pending[0], oldest_pending[1] - 1))
    with _outbox_lock:
        done = [rid for rid, sent in _outbox.items() if sent.state == "streamed" and _id(sent.message_id) <= written]
        for request_id in done:
            del _outbox[request_id]


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
    client = get_async_redis()
    if client is None:
        return
    key = await in_ledger_thread(stream_key)
    checked = 0.0
    while True:
        try:
            if time.monotonic() - checked >= OUTBOX_CHECK_SECONDS:
                checked = time.monotonic()
                await in_ledger_thread(check_outbox)
            written = await in_ledger_thread(drain_once)
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
    loop_id = id(asyncio.get_running_loop())
    task = _drainers.get(loop_id)
    if task is None or task.done():
        _drainers[loop_id] = spawn(_drain_forever())
