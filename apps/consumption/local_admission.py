"""The metering scripts' semantics on in-process state, under one lock: admission, settlement and extension without
Redis (limits are then per process, which suits a single development server and tests), and the flags revocation
and suspension set."""

from __future__ import annotations

import time
from typing import Any

from apps.consumption.protocol import (
    CHARGED_MISSING,
    COUNTERS,
    MAX_AMOUNT,
    MAX_COUNTER,
    NOTHING_TO_SETTLE,
    REFUSED,
    SETTLED,
    AdmissionArgs,
    AdmissionResult,
    CallKeys,
    SettleArgs,
)
from llm_infra_django.memory import LocalState


class LocalAdmission(LocalState):
    """What Redis holds for the scripts, in memory: counters, reservations, rpm logs, parallel slots, flags."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, Any] = {}
        self.flags: set[str] = set()

    def _clear(self) -> None:
        self.values.clear()
        self.flags.clear()

    def admit(self, keys: CallKeys, args: AdmissionArgs) -> AdmissionResult:
        with self.lock:
            return self._admit(keys, args)

    def _count(self, key: str) -> int | None:
        value = self.values.get(key)
        return value if isinstance(value, int) and 0 <= value <= MAX_COUNTER else None

    def _admit(self, keys: CallKeys, a: AdmissionArgs) -> AdmissionResult:
        now = int(time.time() * 1000)
        if keys.revoked in self.flags:
            return AdmissionResult(0, "revoked")
        if keys.suspended in self.flags:
            return AdmissionResult(0, "suspended")
        if not (0 <= a.est_tokens <= MAX_AMOUNT and 0 <= a.est_cost <= MAX_AMOUNT):
            return AdmissionResult(-4, "amount")
        amounts = {"budget_day": a.est_cost, "budget_month": a.est_cost, "api_requests": 1}
        amounts |= {"tokens": a.est_tokens, "spend_usd": a.est_cost, "balance": a.est_cost}
        metered = {name: a.metered[name].clamped() for name in COUNTERS}
        current: dict[str, int] = {}
        missing = []
        for name, m in metered.items():
            if m.limit < 0:
                continue
            value = self._count(keys.counter(name))
            if value is not None:
                current[name] = value
            elif m.seed >= 0:
                current[name] = m.seed
            else:
                missing.append(name)
        if missing:
            return AdmissionResult(-2, "seed", missing=tuple(missing))
        log: list[tuple[int, str]] = self.values.setdefault(keys.rpm, [])
        log[:] = [(ts, rid) for ts, rid in log if ts > now - 60_000]
        if a.rpm_limit >= 0 and len(log) >= a.rpm_limit:
            return AdmissionResult(0, "rpm", retry_ms=max(log[0][0] + 60_000 - now, 1), limit=a.rpm_limit)
        tpm_used = self.values.get(keys.tpm, 0)
        window = a.tpm_window_ms
        if a.tpm_limit >= 0 and tpm_used + a.est_tokens > a.tpm_limit:
            return AdmissionResult(0, "tpm", retry_ms=window - now % window, limit=a.tpm_limit)
        slots: dict[str, int] = self.values.setdefault(keys.parallel, {})
        for rid in [rid for rid, deadline in slots.items() if deadline <= now]:
            slots.pop(rid)
        if a.max_parallel >= 0 and len(slots) >= a.max_parallel:
            return AdmissionResult(0, "parallel", retry_ms=1000, limit=a.max_parallel)
        throttled = False
        flags = []
        for name, used in current.items():
            limit, action = metered[name].limit, metered[name].action
            after = used + amounts[name]
            if after > MAX_COUNTER or (after > limit and action == "block"):
                return AdmissionResult(0, name, limit=limit, used=used)
            if after > limit:
                if action == "throttle":
                    throttled = True
                elif used <= limit:
                    flags.append(f"alert:{name}")
            if 5 * used < 4 * limit <= 5 * after:
                flags.append(f"soft:{name}")
        if throttled:
            tokens, ts = self.values.get(keys.throttle, (1.0, now))
            tokens = min(1.0, tokens + (now - ts) * a.throttle_rate / 1000)
            if tokens < 1:
                return AdmissionResult(0, "throttle", retry_ms=int((1 - tokens) * 1000 / a.throttle_rate) + 1)
            self.values[keys.throttle] = (tokens - 1, now)
        if a.rpm_limit >= 0:
            log.append((now, a.request_id))
        if a.tpm_limit >= 0:
            self.values[keys.tpm] = tpm_used + a.est_tokens
        if a.max_parallel >= 0:
            slots[a.request_id] = now + a.slot_ms
        for name, used in current.items():
            self.values[keys.counter(name)] = used + amounts[name]
        self.values[keys.reservation] = {
            "tokens": a.est_tokens,
            "cost": a.est_cost,
            "charged": list(current),
            "tpm": a.tpm_limit >= 0,
            "deadline": now + a.slot_ms,
            "key": a.key_id,
            "at": now,
            **({"rec": a.orphan_record} if a.orphan_record else {}),
        }
        return AdmissionResult(
            1,
            "ok",
            rpm_remaining=a.rpm_limit - len(log) if a.rpm_limit >= 0 else -1,
            tpm_remaining=a.tpm_limit - tpm_used - a.est_tokens if a.tpm_limit >= 0 else -1,
            tpm_reset_ms=window - now % window,
            flags=tuple(flags),
        )

    def extend(self, keys: CallKeys, request_id: str, slot_ms: int) -> None:
        with self.lock:
            reservation = self.values.get(keys.reservation)
            if reservation is None:
                return
            deadline = int(time.time() * 1000) + slot_ms
            reservation["deadline"] = deadline
            slots = self.values.get(keys.parallel)
            if isinstance(slots, dict) and request_id in slots:
                slots[request_id] = deadline

    def _adjust(self, key: str, plus: int, minus: int = 0) -> None:
        """As settle.lua: never below zero, never above the ceiling; a counter out of range is dropped."""
        value = self.values.get(key)
        if plus == minus or value is None:
            return
        if self._count(key) is None:
            del self.values[key]
            return
        self.values[key] = min(max(value + plus - minus, 0), MAX_COUNTER)

    def settle(self, keys: CallKeys, args: SettleArgs) -> int:
        if not (0 <= args.tokens <= MAX_AMOUNT and 0 <= args.cost <= MAX_AMOUNT):
            return REFUSED
        actual = {"budget_day": args.cost, "budget_month": args.cost, "api_requests": int(args.counted)}
        actual |= {"tokens": args.tokens, "spend_usd": args.cost, "balance": args.cost}
        with self.lock:
            reservation = self.values.pop(keys.reservation, None)
            if reservation is None:
                if not args.charge_missing:
                    return NOTHING_TO_SETTLE
                self._adjust(keys.tpm, args.tokens)
                for name in COUNTERS:
                    self._adjust(keys.counter(name), actual[name])
                self.values.get(keys.parallel, {}).pop(args.request_id, None)
                return CHARGED_MISSING
            reserved = {"budget_day": reservation["cost"], "budget_month": reservation["cost"], "api_requests": 1}
            reserved |= {
                "tokens": reservation["tokens"],
                "spend_usd": reservation["cost"],
                "balance": reservation["cost"],
            }
            if reservation["tpm"]:
                self._adjust(keys.tpm, args.tokens, reservation["tokens"])
            for name in reservation["charged"]:
                self._adjust(keys.counter(name), actual[name], reserved[name])
            self.values.get(keys.parallel, {}).pop(args.request_id, None)
            return SETTLED


local = LocalAdmission()
