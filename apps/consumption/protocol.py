"""The wire format of the metering scripts (admission.lua, settle.lua, extend.lua): their Redis keys and arguments as
named types. Positions live here, beside the scripts, and nowhere else: callers build and read these types."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from apps.tenancy import quotas

_HERE = Path(__file__).parent
_INTEGERS_LUA = (_HERE / "integers.lua").read_text()
ADMIT_LUA = _INTEGERS_LUA + (_HERE / "admission.lua").read_text()
SETTLE_LUA = _INTEGERS_LUA + (_HERE / "settle.lua").read_text()
EXTEND_LUA = (_HERE / "extend.lua").read_text()

# The largest amount (tokens, or 10⁻¹⁰ USD: about $112 000) one call may reserve, and the largest value a counter may
# hold (about $100 M a period): the scripts add and compare them exactly (see integers.lua).
MAX_AMOUNT = 2**50
MAX_COUNTER = 10**18 - 1
TPM_WINDOW_MS = 60_000
METERED = ("budget_day", "budget_month", "api_requests", "tokens", "spend_usd")
# With a prepaid tenant's credit: `balance` counts what the tenant was billed, ever, against what it was credited.
COUNTERS = (*METERED, "balance")
QUOTAS = ("api_requests", "tokens", "spend_usd")


# --- Keys ----------------------------------------------------------------------------------------------------


def _tag(tenant_id: str) -> str:
    """The tenant's hash tag: every key of one call lands in one Redis Cluster slot."""
    return f"{{t:{tenant_id}}}"


def revoked_key(tenant_id: str, key_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:revoked:{key_id}"


def suspended_key(tenant_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:suspended"


def reservation_key(tenant_id: str, request_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:resv:{request_id}"


def reservation_index_key(tenant_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:resv-idx"


def parallel_key(tenant_id: str, key_id: str) -> str:
    return f"ck:{_tag(tenant_id)}:k:{key_id}:par"


def pending_key(tenant_id: str) -> str:
    """Charges settled while their counter was missing (Redis lost it): `<counter key>|<request id>` → amount. The
    admission that seeds the counter from the database adds those the database did not hold yet (see admission.lua)."""
    return f"ck:{_tag(tenant_id)}:pending"


def credit_used_key(tenant_id: str) -> str:
    """What a prepaid tenant was billed, ever (10⁻¹⁰ USD): admission keeps it within the tenant's credits."""
    return f"ck:{_tag(tenant_id)}:credit-used:e10"


def budget_counter_keys(tenant_id: str, key_id: str, now: datetime) -> tuple[str, str]:
    """A key's budget counters of the UTC day and month holding `now`. Money counters name their unit (10⁻¹⁰ USD):
    counters of an older unit are never read as this one."""
    tag = _tag(tenant_id)
    return f"ck:{tag}:k:{key_id}:bd:e10:{now:%Y%m%d}", f"ck:{tag}:k:{key_id}:bm:e10:{now:%Y%m}"


@dataclass(frozen=True)
class CallKeys:
    """The Redis keys of one call: admission reads and charges them, settlement and extension reuse them."""

    revoked: str
    suspended: str
    rpm: str
    tpm: str
    parallel: str
    budget_day: str
    budget_month: str
    api_requests: str
    tokens: str
    spend_usd: str
    reservation: str
    reservation_index: str
    throttle: str
    pending: str
    balance: str

    @classmethod
    def of(
        cls, *, tenant_id: str, key_id: str, request_id: str, timezone: str, periods: dict[str, str], now: datetime
    ) -> CallKeys:
        """The keys of a call of `key_id` admitted at `now`; `periods` names each quota's period (month, day…)."""
        tag = _tag(tenant_id)
        minute = int(now.timestamp() * 1000) // TPM_WINDOW_MS
        quota = {
            name: quotas.counter_key(tenant_id, name, quotas.period_bounds(periods[name], timezone, now)[0])
            for name in QUOTAS
        }
        budget_day, budget_month = budget_counter_keys(tenant_id, key_id, now)
        return cls(
            revoked=revoked_key(tenant_id, key_id),
            suspended=suspended_key(tenant_id),
            rpm=f"ck:{tag}:k:{key_id}:rpm",
            tpm=f"ck:{tag}:k:{key_id}:tpm:{minute}",
            parallel=parallel_key(tenant_id, key_id),
            budget_day=budget_day,
            budget_month=budget_month,
            reservation=reservation_key(tenant_id, request_id),
            reservation_index=reservation_index_key(tenant_id),
            throttle=f"ck:{tag}:qthrottle",
            pending=pending_key(tenant_id),
            balance=credit_used_key(tenant_id),
            **quota,
        )

    def counter(self, name: str) -> str:
        """The key of a metered counter by its name (`budget_day` … `spend_usd`)."""
        return str(getattr(self, name))

    def for_admission(self) -> list[str]:
        """KEYS of admission.lua, in its order."""
        return [
            self.revoked,
            self.suspended,
            self.rpm,
            self.tpm,
            self.parallel,
            self.budget_day,
            self.budget_month,
            self.api_requests,
            self.tokens,
            self.spend_usd,
            self.reservation,
            self.reservation_index,
            self.throttle,
            self.pending,
            self.balance,
        ]

    def for_settlement(self) -> list[str]:
        """KEYS of settle.lua, in its order."""
        return [
            self.reservation,
            self.reservation_index,
            self.parallel,
            self.tpm,
            self.budget_day,
            self.budget_month,
            self.api_requests,
            self.tokens,
            self.spend_usd,
            self.pending,
            self.balance,
        ]

    def for_extension(self) -> list[str]:
        """KEYS of extend.lua, in its order."""
        return [self.reservation, self.reservation_index, self.parallel]


# --- Admission -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Metered:
    """One budget or quota as admission checks it: its limit (-1: none), what to do past it (`block`, `throttle`,
    `alert`), and the durable usage to start a missing counter from (-1: unknown, the caller reads it)."""

    limit: int = -1
    action: str = "block"
    seed: int = -1

    def clamped(self) -> Metered:
        """Within what a counter may hold (a limit beyond can never be reached anyway)."""
        return Metered(
            limit=-1 if self.limit < 0 else min(self.limit, MAX_COUNTER),
            action=self.action,
            seed=-1 if self.seed < 0 else min(self.seed, MAX_COUNTER),
        )


@dataclass(frozen=True)
class AdmissionArgs:
    """The arguments of admission.lua (see the script for their meaning): limits are -1 when absent."""

    request_id: str
    key_id: str
    rpm_limit: int
    tpm_limit: int
    max_parallel: int
    est_tokens: int
    est_cost: int  # 10⁻¹⁰ USD
    slot_ms: int
    metered: dict[str, Metered]  # by name, every one of COUNTERS
    throttle_rate: float  # requests per second past a THROTTLE quota
    quota_ttl_s: int
    orphan_record: str = ""
    valid_until_ms: int = -1
    tpm_window_ms: int = TPM_WINDOW_MS
    # request ids the seeds' database snapshot already holds (their pending charges are in the seeds)
    seeded_ids: tuple[str, ...] = ()

    def to_redis(self) -> list[Any]:
        """ARGV of admission.lua, in its order."""
        m = {name: value.clamped() for name, value in self.metered.items()}
        return [
            self.request_id,
            self.rpm_limit,
            self.tpm_limit,
            self.est_tokens,
            self.max_parallel,
            self.slot_ms,
            m["budget_day"].limit,
            m["budget_month"].limit,
            self.est_cost,
            *(value for name in QUOTAS for value in (m[name].limit, m[name].action, m[name].seed)),
            m["budget_day"].seed,
            m["budget_month"].seed,
            self.throttle_rate,
            self.quota_ttl_s,
            self.tpm_window_ms,
            self.key_id,
            self.orphan_record,
            self.valid_until_ms,
            MAX_AMOUNT,
            MAX_COUNTER,
            " ".join(self.seeded_ids),
            m["balance"].limit,
            m["balance"].seed,
        ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class AdmissionResult:
    """What admission.lua answered. `status`: 1 admitted, 0 refused (`reason` names the limit), -2 counters to seed
    (`missing` names them), -3 the answer came after the caller stopped waiting, -4 an argument out of range."""

    status: int
    reason: str
    retry_ms: int = 0
    rpm_remaining: int = -1
    tpm_remaining: int = -1
    tpm_reset_ms: int = 0
    flags: tuple[str, ...] = ()
    limit: int = 0
    used: int = 0
    missing: tuple[str, ...] = ()

    @classmethod
    def from_redis(cls, raw: list[Any]) -> AdmissionResult:
        status, reason = int(raw[0]), _text(raw[1])
        if status == 1:
            return cls(
                status,
                reason,
                rpm_remaining=int(raw[2]),
                tpm_remaining=int(raw[3]),
                tpm_reset_ms=int(raw[4]),
                flags=tuple(f for f in _text(raw[5]).split(",") if f),
            )
        if status == -2:
            return cls(status, reason, missing=tuple(_text(name) for name in raw[2:]))
        if status == 0 and len(raw) > 4:
            return cls(status, reason, retry_ms=int(raw[2]), limit=int(raw[3]), used=int(raw[4]))
        if status == 0:
            return cls(status, reason, retry_ms=int(raw[2]) if len(raw) > 2 else 1000)
        return cls(status, reason)

    def to_redis(self) -> list[Any]:
        """The script's answer for this result (the in-process twin answers in the script's shape)."""
        if self.status == 1:
            return [1, self.reason, self.rpm_remaining, self.tpm_remaining, self.tpm_reset_ms, ",".join(self.flags)]
        if self.status == -2:
            return [-2, self.reason, *self.missing]
        if self.status == 0 and self.reason in COUNTERS:
            return [0, self.reason, self.retry_ms, self.limit, self.used]
        if self.status == 0:
            return [0, self.reason, self.retry_ms, self.limit]
        return [self.status, self.reason]


# --- Settlement and extension ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettleArgs:
    """The arguments of settle.lua: the actual usage of a call (tokens, cost in 10⁻¹⁰ USD, whether it counts as a
    request), whether to charge it when the reservation is gone, and the time after which nothing is applied."""

    request_id: str
    tokens: int
    cost: int
    counted: bool
    charge_missing: bool = False
    valid_until_ms: int = -1

    def to_redis(self) -> list[Any]:
        """ARGV of settle.lua, in its order."""
        return [
            self.request_id,
            self.tokens,
            self.cost,
            1 if self.counted else 0,
            1 if self.charge_missing else 0,
            self.valid_until_ms,
            MAX_AMOUNT,
            MAX_COUNTER,
        ]


# settle.lua's answers
SETTLED, CHARGED_MISSING, NOTHING_TO_SETTLE, STALE, REFUSED = 1, 2, 0, -3, -4


def extension_args(request_id: str, slot_ms: int) -> list[Any]:
    """ARGV of extend.lua: the request id and the slot lifetime (ms) to push its deadline ahead by."""
    return [request_id, slot_ms]
