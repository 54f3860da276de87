"""Reconciliation of unsettled reservations from the ledger (in-process and Redis); retention of raw records."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import override_settings
from django.utils import timezone

from apps.consumption import admission, reconcile, usage
from apps.consumption.key_lookup import load_key
from apps.consumption.keys import hash_secret
from apps.consumption.local_admission import local
from apps.consumption.models import UsageRecord, UsageRollup
from apps.consumption.protocol import COUNTERS, METERED, SettleArgs, reservation_index_key
from apps.consumption.services import create_api_key
from apps.consumption.tasks import prune_usage_records_task, reconcile_reservations_task
from apps.tenancy import quotas
from apps.tenancy.services import set_quota_override
from llm_infra_django.redis import get_redis
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write
from tests.apps.tenancy.factories import UserFactory

LOCAL_CACHE = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "reconcile"}}


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


def admitted(key: Any, request_id: str, *, tokens: int, cost: str) -> admission.Ticket:
    return async_to_sync(admission.admit)(
        key=key,
        request_id=request_id,
        limits=key.quota_limits,
        est_tokens=tokens,
        est_cost=Decimal(cost),
        timeout_s=1.0,
    )


class Counters:
    """The admission counters of one ticket, read from Redis or the in-process twin."""

    def __init__(self, ticket: admission.Ticket) -> None:
        self.keys = ticket.keys
        self.client = get_redis()

    def _get(self, name: str) -> Any:
        if self.client is None:
            return local.values.get(name)
        raw = self.client.get(name)
        return None if raw is None else int(raw)

    def snapshot(self) -> dict[str, Any]:
        return {name: self._get(self.keys.counter(name)) for name in METERED}

    def slots(self) -> int:
        if self.client is None:
            return len(local.values.get(self.keys.parallel, {}))
        return int(self.client.zcard(self.keys.parallel))

    def reserved(self) -> bool:
        if self.client is None:
            return self.keys.reservation in local.values
        return bool(self.client.exists(self.keys.reservation))


@pytest.fixture
def budget_key(traffic: Traffic) -> tuple[Any, Any]:
    """A key with budgets and a parallel limit; the tenant's metered quotas are limited whatever the tier table
    holds (transactional tests flush it)."""
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    for quota_type in ("api_requests", "tokens", "spend_usd"):
        set_quota_override(tenant=traffic.consumer, quota_type=quota_type, limit=10**9, action="alert", actor=operator)
    key, secret = create_api_key(
        tenant=traffic.consumer,
        actor=None,
        name="budgeted",
        scopes=["consume"],
        budget_day_usd=Decimal(10),
        budget_month_usd=Decimal(100),
        max_parallel=4,
    )
    info = load_key(hash_secret(secret))
    assert info is not None
    return key, info


def scenario(traffic: Traffic, key: Any, info: Any) -> tuple[Counters, Counters]:
    """Two admitted requests whose workers died: one reached the ledger (40 tokens, $0.004), one did not."""
    finished = admitted(info, "req-finished", tokens=100, cost="0.01")
    lost = admitted(info, "req-lost", tokens=50, cost="0.005")
    write([entry(traffic, key=key, request_id="req-finished", prompt=30, completion=10, cost=Decimal("0.004"))])
    before = Counters(finished).snapshot()
    assert before == {
        "budget_day": 150_000_000,
        "budget_month": 150_000_000,
        "api_requests": 2,
        "tokens": 150,
        "spend_usd": 150_000_000,
    }
    return Counters(finished), Counters(lost)


def assert_reconciled(finished: Counters, lost: Counters) -> None:
    # the finished request is charged its actual usage, the lost one refunded and uncounted
    assert finished.snapshot() == {
        "budget_day": 40_000_000,
        "budget_month": 40_000_000,
        "api_requests": 1,
        "tokens": 40,
        "spend_usd": 40_000_000,
    }
    assert not finished.reserved() and not lost.reserved()
    assert finished.slots() == 0


@override_settings(CACHES=LOCAL_CACHE)
def test_in_process_reservations_are_settled_from_the_ledger(traffic: Traffic, budget_key: tuple[Any, Any]) -> None:
    assert get_redis() is None
    finished, lost = scenario(traffic, *budget_key)
    now_ms = int(time.time() * 1000)

    # not yet due: the twin records no deadline, so the reconciler waits a full slot after first seeing it
    assert reconcile.reconcile_reservations(now_ms=now_ms).due == 0
    assert finished.reserved()

    report = reconcile.reconcile_reservations(now_ms=now_ms + 10 * 60_000)

    assert (report.due, report.settled_from_ledger, report.refunded) == (2, 1, 1)
    assert_reconciled(finished, lost)
    # idempotent
    again = reconcile.reconcile_reservations(now_ms=now_ms + 20 * 60_000)
    assert again.due == 0
    assert_reconciled(finished, lost)


@override_settings(CACHES=LOCAL_CACHE)
def test_a_reservation_naming_its_key_and_admission_time_is_settled_exactly(
    traffic: Traffic, budget_key: tuple[Any, Any]
) -> None:
    """Reservations that record their key, admission time and deadline (the admission change proposed to the
    proxy's owner) need no reconstruction: the key's budgets are refunded although the key has no parallel slot."""
    key, secret = create_api_key(
        tenant=traffic.consumer, actor=None, name="no-slots", scopes=["consume"], budget_day_usd=Decimal(10)
    )
    info = load_key(hash_secret(secret))
    ticket = admitted(info, "req-described", tokens=100, cost="0.01")
    now_ms = int(time.time() * 1000)
    local.values[ticket.keys.reservation].update(
        {"key": str(key.pk), "at": now_ms - 120_000, "deadline": now_ms - 60_000}
    )

    report = reconcile.reconcile_reservations(now_ms=now_ms)

    assert (report.due, report.refunded, report.key_unknown) == (1, 1, 0)
    assert Counters(ticket).snapshot()["budget_day"] == 0
    assert not Counters(ticket).reserved()


@override_settings(CACHES=LOCAL_CACHE)
def test_without_a_record_the_whole_reservation_is_refunded_to_the_key_it_names(
    traffic: Traffic, budget_key: tuple[Any, Any]
) -> None:
    """Reservations name their key: a request that left no ledger record gives back its tenant quotas and the
    key's budget."""
    _, secret = create_api_key(
        tenant=traffic.consumer, actor=None, name="anonymous", scopes=["consume"], budget_day_usd=Decimal(10)
    )
    ticket = admitted(load_key(hash_secret(secret)), "req-orphan", tokens=100, cost="0.01")
    now_ms = int(time.time() * 1000)
    reconcile.reconcile_reservations(now_ms=now_ms)

    report = reconcile.reconcile_reservations(now_ms=now_ms + 10 * 60_000)

    assert (report.refunded, report.key_unknown) == (1, 0)
    counters = Counters(ticket).snapshot()
    assert (counters["api_requests"], counters["tokens"], counters["spend_usd"]) == (0, 0, 0)
    assert counters["budget_day"] == 0


@override_settings(CACHES=LOCAL_CACHE)
def test_a_settled_reservation_is_left_alone(traffic: Traffic, budget_key: tuple[Any, Any]) -> None:
    _, info = budget_key
    ticket = admitted(info, "req-settled", tokens=100, cost="0.01")
    async_to_sync(admission.settle)(ticket, tokens=20, cost=Decimal("0.002"))

    assert reconcile.reconcile_reservations(now_ms=int(time.time() * 1000) + 3_600_000).due == 0
    assert Counters(ticket).snapshot()["tokens"] == 20
    assert Counters(ticket).snapshot()["budget_day"] == 20_000_000


@override_settings(CACHES=LOCAL_CACHE)
def test_the_reconcile_task_runs(traffic: Traffic) -> None:
    assert reconcile_reservations_task.delay().get()["due"] == 0


@pytest.mark.redis
def test_redis_reservations_are_settled_from_the_ledger(traffic: Traffic, budget_key: tuple[Any, Any]) -> None:
    client = get_redis()
    assert client is not None
    key, info = budget_key
    finished, lost = scenario(traffic, key, info)
    index = reservation_index_key(str(traffic.consumer.pk))
    assert {m.decode() for m in client.zrange(index, 0, -1)} == {"req-finished", "req-lost"}

    # not due yet (deadlines are a slot ahead): nothing of ours is touched
    reconcile.reconcile_reservations()
    assert finished.reserved() and lost.reserved()

    # when both deadlines lie in the past (as after a killed worker), in the hash and the index alike
    past = int(time.time() * 1000) - 120_000
    for request_id in ("req-finished", "req-lost"):
        client.hset(f"ck:{{t:{traffic.consumer.pk}}}:resv:{request_id}", "deadline", past)
        client.zadd(index, {request_id: past})
    report = reconcile.reconcile_reservations()

    assert report.settled_from_ledger >= 1 and report.refunded >= 1
    assert_reconciled(finished, lost)
    assert client.zcard(index) == 0
    # idempotent: a second pass finds nothing of ours
    reconcile.reconcile_reservations()
    assert_reconciled(finished, lost)


@pytest.mark.redis
def test_a_stale_index_entry_is_dropped(traffic: Traffic) -> None:
    client = get_redis()
    assert client is not None
    index = reservation_index_key(str(traffic.consumer.pk))
    client.zadd(index, {"ghost": int(time.time() * 1000) - 600_000})

    reconcile.reconcile_reservations()

    assert client.zscore(index, "ghost") is None


# --- Retention -------------------------------------------------------------------------------------------------


def test_retention_prunes_old_raw_records_and_keeps_rollups(traffic: Traffic) -> None:
    now = timezone.now()
    write([entry(traffic, started_at=now - timedelta(days=days), request_id=f"d{days}") for days in (120, 91, 89, 0)])
    rollups_before = list(UsageRollup.objects.order_by("day").values_list("day", "requests"))

    deleted = reconcile.prune_usage_records(batch_size=1)

    assert deleted == 2
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"d89", "d0"}
    assert list(UsageRollup.objects.order_by("day").values_list("day", "requests")) == rollups_before
    assert usage.summarize_usage(traffic.consumer, days=366)["totals"]["requests"] == 4
    assert reconcile.prune_usage_records() == 0


def test_retention_follows_the_setting(traffic: Traffic) -> None:
    now = datetime.now(UTC)
    write([entry(traffic, started_at=now - timedelta(days=days)) for days in (3, 1)])

    with override_settings(MARKETPLACE_CONSUMPTION={"RETENTION_DAYS": 2}):
        assert prune_usage_records_task.delay().get() == 1
    assert UsageRecord.objects.count() == 1


def test_records_still_refuse_ordinary_deletion(traffic: Traffic) -> None:
    write([entry(traffic)])
    with pytest.raises(PermissionError):
        UsageRecord.objects.get().delete()


def dead_process_record(traffic: Traffic, key: Any, info: Any, request_id: str) -> Any:
    """The record the proxy leaves with a reservation for the case its process dies (a 499 `worker_lost`)."""
    from apps.tenancy import quotas

    orphan = entry(traffic, key=key, request_id=request_id, prompt=30, completion=0, cost=Decimal("0.003"), status=499)
    orphan.error_code, orphan.estimated, orphan.stream = "worker_lost", True, True
    orphan.quota_periods = {
        name: quotas.period_bounds(limit.period, info.tenant_timezone, orphan.started_at)
        for name, limit in info.quota_limits.items()
    }
    return orphan


def admitted_with_orphan(info: Any, orphan: Any) -> admission.Ticket:
    from apps.consumption.ledger_stream import encode

    return async_to_sync(admission.admit)(
        key=info,
        request_id=orphan.request_id,
        limits=info.quota_limits,
        est_tokens=100,
        est_cost=Decimal("0.01"),
        timeout_s=1.0,
        orphan_record=encode(orphan)["e"],
    )


def assert_orphan_reconciled(ticket: admission.Ticket, request_id: str) -> None:
    record = UsageRecord.objects.get(request_id=request_id)
    assert (record.status_code, record.error_code, record.estimated) == (499, "worker_lost", True)
    assert (record.prompt_tokens, record.completion_tokens, record.cost) == (30, 0, Decimal("0.003"))
    assert Counters(ticket).snapshot() == {
        "budget_day": 30_000_000,
        "budget_month": 30_000_000,
        "api_requests": 1,
        "tokens": 30,
        "spend_usd": 30_000_000,
    }
    assert not Counters(ticket).reserved() and Counters(ticket).slots() == 0


@override_settings(CACHES=LOCAL_CACHE)
def test_a_dead_process_s_request_is_recorded_from_its_reservation(
    traffic: Traffic, budget_key: tuple[Any, Any]
) -> None:
    key, info = budget_key
    ticket = admitted_with_orphan(info, dead_process_record(traffic, key, info, "req-dead"))
    now_ms = int(time.time() * 1000)

    report = reconcile.reconcile_reservations(now_ms=now_ms + 10 * 60_000)

    assert (report.due, report.orphans_recorded, report.refunded) == (1, 1, 0)
    assert_orphan_reconciled(ticket, "req-dead")
    # idempotent
    assert reconcile.reconcile_reservations(now_ms=now_ms + 20 * 60_000).due == 0
    assert UsageRecord.objects.filter(request_id="req-dead").count() == 1


@pytest.mark.redis
def test_redis_a_dead_process_s_request_is_recorded_and_a_live_one_is_left_alone(
    traffic: Traffic, budget_key: tuple[Any, Any]
) -> None:
    client = get_redis()
    key, info = budget_key
    tenant = str(traffic.consumer.pk)
    index = reservation_index_key(tenant)
    dead = admitted_with_orphan(info, dead_process_record(traffic, key, info, "req-dead"))
    live = admitted_with_orphan(info, dead_process_record(traffic, key, info, "req-live"))

    # given both past their first deadline; the live one's process pushes its deadline ahead (a flowing stream)
    past = int(time.time() * 1000) - 120_000
    for request_id in ("req-dead", "req-live"):
        client.hset(f"ck:{{t:{tenant}}}:resv:{request_id}", "deadline", past)
        client.zadd(index, {request_id: past})
        client.zadd(dead.keys.parallel, {request_id: past})
    async_to_sync(admission.extend)(live)

    # when the reconciler runs
    report = reconcile.reconcile_reservations()

    # then the dead request is recorded and settled; the live one keeps its reservation and its parallel slot
    assert report.orphans_recorded >= 1  # (the shared Redis may hold other tests' due reservations)
    assert not UsageRecord.objects.filter(request_id="req-live").exists()
    assert Counters(live).reserved()
    assert client.zscore(live.keys.parallel, "req-live") > time.time() * 1000
    assert client.zscore(live.keys.parallel, "req-dead") is None
    assert UsageRecord.objects.get(request_id="req-dead").error_code == "worker_lost"


@pytest.mark.parametrize("redis", [False, pytest.param(True, marks=pytest.mark.redis)])
def test_a_request_settling_after_its_reservation_is_gone_is_charged_once(
    traffic: Traffic, budget_key: tuple[Any, Any], redis: bool
) -> None:
    """The proxy settles its own requests with `charge_missing`: a reservation Redis lost (or the reconciler refunded)
    is charged the actual usage; settling again changes nothing."""
    from contextlib import nullcontext

    with nullcontext() if redis else override_settings(CACHES=LOCAL_CACHE):
        _, info = budget_key
        ticket = admitted(info, "req-late", tokens=100, cost="0.01")
        counters = Counters(ticket)
        # the reservation disappears with its charge (as after a refund)
        async_to_sync(admission.settle)(ticket, tokens=0, cost=Decimal(0), counted=False)
        assert counters.snapshot()["budget_day"] == 0

        ticket.settled = False
        async_to_sync(admission.settle)(ticket, tokens=40, cost=Decimal("0.004"), charge_missing=True)

        assert counters.snapshot() == {
            "budget_day": 40_000_000,
            "budget_month": 40_000_000,
            "api_requests": 1,
            "tokens": 40,
            "spend_usd": 40_000_000,
        }
        assert counters.slots() == 0
        late = SettleArgs("req-late", tokens=40, cost=40_000_000, counted=True)
        assert admission.settle_sync(ticket.keys, late) == 0
        assert counters.snapshot()["budget_day"] == 40_000_000


@pytest.mark.redis
@pytest.mark.parametrize("recorded_before_seeding", [False, True])
def test_a_charge_settled_while_its_counters_were_lost_is_counted_once_when_they_are_seeded(
    traffic: Traffic, budget_key: tuple[Any, Any], recorded_before_seeding: bool
) -> None:
    """Redis lost its data while a request was in flight: the request settles (charging what it used) before any
    admission seeded the counters again, and its record reaches the database before or after the seed is read. Either
    way the seeded counters hold it exactly once (the charge waits as pending; the seed adds it unless the database
    snapshot it was read from already held the record)."""
    key, info = budget_key
    client = get_redis()
    ticket = admitted(info, "req-in-flight", tokens=100, cost="0.01")
    # Redis loses everything of this tenant
    client.delete(*[ticket.keys.counter(name) for name in METERED], ticket.keys.reservation, ticket.keys.pending)

    # the request settles its actual usage: the counters are missing, so the charge is kept as pending
    async_to_sync(admission.settle)(ticket, tokens=40, cost=Decimal("0.004"), charge_missing=True)
    assert Counters(ticket).snapshot() == dict.fromkeys(METERED)
    assert client.hlen(ticket.keys.pending) == len(COUNTERS)  # (the balance counter's too, prepaid or not)

    recorded = [entry(traffic, key=key, request_id="req-in-flight", prompt=30, completion=10, cost=Decimal("0.004"))]
    recorded[0].quota_periods = {
        name: quotas.period_bounds(info.quota_limits[name].period, info.tenant_timezone, timezone.now())
        for name in ("api_requests", "tokens", "spend_usd")
    }
    if recorded_before_seeding:
        write(recorded)
    following = admitted(info, "req-next", tokens=100, cost="0.01")
    if not recorded_before_seeding:
        write(recorded)

    assert Counters(following).snapshot() == {
        "budget_day": 140_000_000,
        "budget_month": 140_000_000,
        "api_requests": 2,
        "tokens": 140,
        "spend_usd": 140_000_000,
    }
    assert client.hlen(ticket.keys.pending) == 0
