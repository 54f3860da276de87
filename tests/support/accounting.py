"""The accounting checks of multi-process tests, read straight from a private cluster's PostgreSQL and Redis: the
ledger stream drained, usage records per request id, rollups and durable quota usage equal to the raw records,
and Redis' admission counters equal to the database once nothing is in flight."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from tests.support.cluster import PostgresCluster

# Money counters count in the ledger's own quantum, 10⁻¹⁰ USD: a ledger cost converts exactly.
UNITS_PER_USD = 10**10


def units(usd: Decimal) -> int:
    value = usd * UNITS_PER_USD
    assert value == int(value), f"{usd} is finer than the ledger's quantum"
    return int(value)


@dataclass(frozen=True)
class Record:
    request_id: str
    api_key_id: str
    status_code: int
    error_code: str
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    estimated: bool
    stream: bool
    started_at: datetime


class Books:
    """The private database `database` of `postgres` and the Redis beside it."""

    def __init__(self, postgres: PostgresCluster, database: str, redis: Any) -> None:
        self.postgres = postgres
        self.database = database
        self.redis = redis

    def sql(self, query: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.postgres.query(self.database, query, params)

    # --- the ledger stream ----------------------------------------------------------------------------------

    @property
    def stream(self) -> str:
        return f"ledger:{{{self.database}}}:records"

    def stream_backlog(self) -> int:
        """Entries in the ledger stream not yet written to the database (written entries are deleted)."""
        return int(self.redis.xlen(self.stream))

    def dead_letters(self) -> int:
        return int(self.redis.xlen(self.stream + ":dead"))

    def wait_drained(self, seconds: float = 60) -> None:
        """Until the ledger stream is empty (every acknowledged record is in the database)."""
        deadline = time.monotonic() + seconds
        while self.stream_backlog():
            if time.monotonic() > deadline:
                try:
                    pending = self.redis.xpending(self.stream, "ledger-writers")
                except Exception as exc:
                    pending = repr(exc)
                raise AssertionError(
                    f"the ledger stream still holds {self.stream_backlog()} entries after {seconds} s "
                    f"(pending: {pending})"
                )
            time.sleep(0.2)

    # --- records ----------------------------------------------------------------------------------------------

    def records(self, request_ids: Iterable[str] | None = None) -> dict[str, Record]:
        query = (
            "SELECT request_id, api_key_id::text, status_code, error_code, prompt_tokens, completion_tokens, cost, "
            "estimated, stream, started_at FROM consumption_usagerecord"
        )
        rows = self.sql(query)
        found = {row[0]: Record(*row) for row in rows}
        if request_ids is None:
            return found
        wanted = set(request_ids)
        return {rid: record for rid, record in found.items() if rid in wanted}

    def wait_for_records(self, request_ids: Iterable[str], seconds: float = 60) -> dict[str, Record]:
        """The records of `request_ids`, waiting (up to `seconds`) until every one of them is there."""
        wanted = set(request_ids)
        deadline = time.monotonic() + seconds
        while True:
            found = self.records(wanted)
            if len(found) == len(wanted) or time.monotonic() > deadline:
                return found
            time.sleep(0.3)

    # --- consistency ------------------------------------------------------------------------------------------

    def assert_rollups_equal_records(self) -> None:
        """Daily rollups hold exactly the sums of the raw records (nothing counted twice or missed)."""
        raw: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
        for record in self.records().values():
            key = (record.started_at.astimezone(UTC).date(), record.api_key_id)
            sums = raw[key]
            sums[0] += 1
            sums[1] += 1 if record.status_code >= 400 else 0
            sums[2] += record.prompt_tokens
            sums[3] += record.completion_tokens
            sums[4] += record.cost
        rolled: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, Decimal(0)])
        for day, key_id, requests, errors, prompt, completion, cost in self.sql(
            "SELECT day, api_key_id::text, requests, errors, prompt_tokens, completion_tokens, cost "
            "FROM consumption_usagerollup"
        ):
            sums = rolled[(day, key_id)]
            for index, value in enumerate((requests, errors, prompt, completion, cost)):
                sums[index] += value
        assert dict(rolled) == dict(raw), f"rollups {dict(rolled)} != raw records {dict(raw)}"

    def quota_usage(self, tenant_id: str) -> dict[str, int]:
        """The tenant's durable usage of the current month, by quota type."""
        start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        rows = self.sql(
            "SELECT quota_type, used FROM tenancy_quotausage WHERE tenant_id = %s AND period_start = %s",
            [tenant_id, start],
        )
        return {quota_type: int(used) for quota_type, used in rows}

    def assert_quota_usage_equals_records(self, tenant_id: str) -> None:
        """The durable quota counters hold exactly what the tenant's counted records used (answered calls and
        streams billed for what they delivered; not the errors)."""
        start = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        expected: Counter[str] = Counter()
        rows = self.sql(
            "SELECT status_code, prompt_tokens, completion_tokens, cost FROM consumption_usagerecord "
            "WHERE tenant_id = %s AND started_at >= %s",
            [tenant_id, start],
        )
        for status, prompt, completion, cost in rows:
            if status >= 400 and status != 499:  # 499: a stream billed for what it delivered
                continue
            expected["api_requests"] += 1
            expected["tokens"] += prompt + completion
            expected["spend_usd"] += units(cost)
        stored, counted = self.quota_usage(tenant_id), {k: v for k, v in expected.items() if v}
        assert stored == counted, f"durable quota usage {stored} != the records' {counted}"

    # --- Redis admission state ---------------------------------------------------------------------------

    def open_reservations(self, tenant_id: str) -> int:
        return int(self.redis.zcard(f"ck:{{t:{tenant_id}}}:resv-idx"))

    def wait_settled(self, tenant_id: str, seconds: float = 60) -> None:
        """Until the tenant has no open reservation (the failure names those left)."""
        deadline = time.monotonic() + seconds
        while self.open_reservations(tenant_id):
            if time.monotonic() > deadline:
                raise AssertionError(f"reservations still open after {seconds} s: {self.reservations(tenant_id)}")
            time.sleep(0.3)

    def reservations(self, tenant_id: str) -> dict[str, dict[str, str]]:
        """The tenant's open reservations (for a failure's report)."""
        found = {}
        for raw in self.redis.zrange(f"ck:{{t:{tenant_id}}}:resv-idx", 0, -1):
            request_id = raw.decode()
            fields = self.redis.hgetall(f"ck:{{t:{tenant_id}}}:resv:{request_id}")
            found[request_id] = {k.decode(): v.decode()[:80] for k, v in fields.items()}
        return found

    def counters(self, tenant_id: str, key_id: str, today: date | None = None) -> dict[str, int | None]:
        """Redis' admission counters of the key and tenant (None where Redis holds none)."""
        today = today or datetime.now(UTC).date()
        start = int(datetime(today.year, today.month, 1, tzinfo=UTC).timestamp())
        tag = f"{{t:{tenant_id}}}"
        names = {
            "budget_day": f"ck:{tag}:k:{key_id}:bd:e10:{today:%Y%m%d}",
            "budget_month": f"ck:{tag}:k:{key_id}:bm:e10:{today:%Y%m}",
            "api_requests": f"quota:{tag}:api_requests:{start}",
            "tokens": f"quota:{tag}:tokens:{start}",
            "spend_usd": f"quota:{tag}:spend_usd:e10:{start}",
        }
        values = self.redis.mget(list(names.values()))
        return {name: int(value) if value is not None else None for name, value in zip(names, values, strict=True)}

    def database_counters(self, tenant_id: str, key_id: str, today: date | None = None) -> dict[str, int]:
        """What the counters must hold according to the database (the sources admission seeds them from)."""
        today = today or datetime.now(UTC).date()
        day = self.sql(
            "SELECT coalesce(sum(cost), 0) FROM consumption_usagerollup WHERE api_key_id = %s AND day = %s",
            [key_id, today],
        )[0][0]
        month = self.sql(
            "SELECT coalesce(sum(cost), 0) FROM consumption_usagerollup WHERE api_key_id = %s AND day >= %s",
            [key_id, today.replace(day=1)],
        )[0][0]
        usage = self.quota_usage(tenant_id)
        return {
            "budget_day": units(Decimal(day)),
            "budget_month": units(Decimal(month)),
            "api_requests": usage.get("api_requests", 0),
            "tokens": usage.get("tokens", 0),
            "spend_usd": usage.get("spend_usd", 0),
        }

    def assert_counters_match_database(self, tenant_id: str, key_id: str) -> None:
        """With nothing in flight, every counter Redis holds equals the database's figure (a counter Redis does not
        hold is seeded from the database at the next admission)."""
        assert self.open_reservations(tenant_id) == 0
        held = {k: v for k, v in self.counters(tenant_id, key_id).items() if v is not None}
        expected = {k: v for k, v in self.database_counters(tenant_id, key_id).items() if k in held}
        assert held == expected, f"Redis holds {held}, the database says {expected}"
