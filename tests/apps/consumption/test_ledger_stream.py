"""The ledger stream survives Redis losing its data (a restart without persistence): the readers' group is made
again, and each process writes the records it appended that Redis lost, counting each exactly once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db.models import Sum

from apps.consumption import admission, ledger_stream
from apps.consumption.key_lookup import load_key
from apps.consumption.keys import hash_secret
from apps.consumption.models import UsageRecord, UsageRollup
from apps.consumption.protocol import SettleArgs
from apps.consumption.services import create_api_key
from apps.tenancy.money import to_units
from llm_infra_django.redis import get_redis
from tests.apps.consumption.conftest import drain_ledger
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


@pytest.fixture(autouse=True)
def _empty_outbox():
    ledger_stream._outbox.clear()
    yield
    ledger_stream._outbox.clear()


def proxied(traffic: Traffic, info: Any, cost: str) -> ledger_stream.Sent:
    """What the proxy does for one answered call: admit, then settle with the record appended to the stream (the
    record is kept in the outbox)."""
    record = entry(traffic, key=traffic.key, cost=Decimal(cost), prompt=10, completion=5)
    ticket = async_to_sync(admission.admit)(
        key=info,
        request_id=record.request_id,
        limits=info.quota_limits,
        est_tokens=100,
        est_cost=Decimal("0.01"),
        timeout_s=1.0,
    )
    key = ledger_stream.stream_key()
    appended = async_to_sync(admission.settle)(
        ticket,
        tokens=15,
        cost=Decimal(cost),
        record=(key, ledger_stream.encode(record), ledger_stream.epoch_key(key)),
        charge_missing=True,
    )
    assert appended is not None
    sent = ledger_stream.Sent(
        entry=record,
        keys=ticket.keys,
        usage=SettleArgs(record.request_id, tokens=15, cost=to_units(Decimal(cost)), counted=True),
        message_id=appended[0],
        epoch=appended[1],
    )
    ledger_stream.remember(sent)
    return sent


def lose_redis_data(tenant_id: str) -> None:
    """What a Redis restart without persistence does to this test's keys: the stream, its group and epoch, and the
    tenant's counters are gone."""
    client = get_redis()
    key = ledger_stream.stream_key()
    client.delete(key, ledger_stream.epoch_key(key))
    for pattern in (f"ck:{{t:{tenant_id}}}:*", f"quota:{{t:{tenant_id}}}:*"):
        names = list(client.scan_iter(match=pattern))
        if names:
            client.delete(*names)


def budget_day(sent: ledger_stream.Sent) -> int:
    return int(get_redis().get(sent.keys.budget_day))


def test_draining_makes_the_group_again_when_redis_lost_it(traffic: Traffic) -> None:
    # given a drained stream (its readers' group exists), then Redis losing everything
    client = get_redis()
    key = ledger_stream.stream_key()
    first = entry(traffic)
    client.xadd(key, ledger_stream.encode(first))
    assert drain_ledger() == 1
    client.delete(key)

    # when a record is appended to the new, group-less stream
    second = entry(traffic)
    client.xadd(key, ledger_stream.encode(second))

    # then it is drained all the same
    assert drain_ledger() == 1
    assert UsageRecord.objects.filter(request_id=second.request_id).exists()


@pytest.fixture
def budgeted(traffic: Traffic) -> Any:
    key, secret = create_api_key(
        tenant=traffic.consumer, actor=None, name="budgeted", scopes=["consume"], budget_day_usd=Decimal(10)
    )
    traffic.key = key
    info = load_key(hash_secret(secret))
    assert info is not None
    return info


def test_records_redis_lost_are_written_and_counted_once(traffic: Traffic, budgeted: Any) -> None:
    # given an answered call whose record is in the stream only
    lost = proxied(traffic, budgeted, "0.004")
    assert not UsageRecord.objects.filter(request_id=lost.entry.request_id).exists()

    # when Redis loses its data, and the next call seeds the key's budget counter from the database
    lose_redis_data(str(traffic.consumer.pk))
    later = proxied(traffic, budgeted, "0.002")
    assert budget_day(later) == 20_000_000, "seeded without the lost record"

    # then the process that appended the lost record writes it, and charges it to the counter seeded without it
    assert ledger_stream.check_outbox() == 1
    assert UsageRecord.objects.filter(request_id=lost.entry.request_id).exists()
    assert budget_day(later) == 60_000_000
    # and nothing is counted twice once the stream is drained and the outbox checked again
    drain_ledger()
    assert ledger_stream.check_outbox() == 0
    assert UsageRecord.objects.count() == 2
    assert UsageRollup.objects.aggregate(n=Sum("requests"))["n"] == 2
    assert budget_day(later) == 60_000_000
    assert not ledger_stream._outbox


def test_a_lost_record_the_database_already_has_is_not_charged_again(traffic: Traffic, budgeted: Any) -> None:
    # given an answered call whose record was drained, but which its process has not yet seen written
    written = proxied(traffic, budgeted, "0.004")
    drain_ledger()
    assert written.entry.request_id in ledger_stream._outbox

    # when Redis loses its data and the next call seeds the budget counter from the database (which has it)
    lose_redis_data(str(traffic.consumer.pk))
    later = proxied(traffic, budgeted, "0.002")
    assert budget_day(later) == 60_000_000

    # then the outbox check writes nothing and charges nothing
    assert ledger_stream.check_outbox() == 0
    assert budget_day(later) == 60_000_000
    assert written.entry.request_id not in ledger_stream._outbox


@pytest.mark.parametrize("counters_held", [True, False])
def test_a_counter_seeded_while_the_outbox_rewrites_a_lost_record_counts_it_once(
    traffic: Traffic, budgeted: Any, monkeypatch: pytest.MonkeyPatch, counters_held: bool
) -> None:
    """The outbox charges a lost record again and writes it. Another call may seed the counters in between: whatever
    the order, the seeded counter holds the lost record once (the charge comes before the write; a charge meeting a
    missing counter waits as pending, which a seed adds only if its snapshot lacks the record)."""
    lost = proxied(traffic, budgeted, "0.004")
    lose_redis_data(str(traffic.consumer.pk))
    assert not UsageRecord.objects.filter(request_id=lost.entry.request_id).exists()
    if counters_held:
        proxied(traffic, budgeted, "0.002")  # the counters exist again (seeded without the lost record)
    later: list[ledger_stream.Sent] = []
    real_write = ledger_stream.write_with_reconnect

    def write_then_seed(entries: list[Any]) -> set[str]:
        written = real_write(entries)
        if not later:  # another call, right after the lost record reached the database
            later.append(proxied(traffic, budgeted, "0.001"))
        return written

    monkeypatch.setattr(ledger_stream, "write_with_reconnect", write_then_seed)
    ledger_stream.check_outbox()

    expected = 40_000_000 + 10_000_000 + (20_000_000 if counters_held else 0)
    assert UsageRecord.objects.filter(request_id=lost.entry.request_id).exists()
    assert budget_day(later[0]) == expected
    drain_ledger()
    ledger_stream.check_outbox()
    assert budget_day(later[0]) == expected


def test_the_outbox_forgets_records_once_they_are_written(traffic: Traffic, budgeted: Any) -> None:
    sent = [proxied(traffic, budgeted, "0.001") for _ in range(3)]
    ledger_stream.check_outbox()
    assert len(ledger_stream._outbox) == 3, "nothing drained yet"
    drain_ledger()
    ledger_stream.check_outbox()
    assert not ledger_stream._outbox
    assert UsageRecord.objects.filter(request_id__in=[s.entry.request_id for s in sent]).count() == 3


def test_admission_and_settlement_reaching_redis_after_their_caller_gave_up_change_nothing(
    traffic: Traffic, budgeted: Any
) -> None:
    """A call that reached a frozen Redis and ran when it woke up: its caller already answered 503 (admission) or
    wrote the record itself (settlement), so Redis applies neither."""
    from apps.consumption.admission import admission_args, call_keys
    from apps.consumption.protocol import ADMIT_LUA, SETTLE_LUA
    from llm_infra_django.redis import cached_script

    client = get_redis()
    now = datetime.now(UTC)
    keys = call_keys(budgeted, "req-ghost", budgeted.quota_limits, now)
    seeds = {"budget_day": 0, "budget_month": 0, "api_requests": 0, "tokens": 0, "spend_usd": 0}
    past = int(now.timestamp() * 1000) - 1_000
    args = admission_args(
        budgeted,
        "req-ghost",
        budgeted.quota_limits,
        est_tokens=10,
        est_cost_units=1_000,
        slot_ms=31_000,
        seeds=seeds,
        valid_until_ms=past,
    )

    assert cached_script(client, ADMIT_LUA)(keys=keys.for_admission(), args=args.to_redis())[:2] == [-3, b"stale"]
    assert not client.exists(keys.reservation) and client.get(keys.budget_day) is None

    # a live admission, then a settlement that arrives too late
    live = replace(args, valid_until_ms=-1)
    assert cached_script(client, ADMIT_LUA)(keys=keys.for_admission(), args=live.to_redis())[0] == 1
    late = SettleArgs("req-ghost", 5, 500, counted=True, charge_missing=True, valid_until_ms=past)
    assert cached_script(client, SETTLE_LUA)(keys=keys.for_settlement(), args=late.to_redis()) == -3
    assert client.exists(keys.reservation) and int(client.get(keys.budget_day)) == 1_000


def test_forgetting_written_records_survives_pending_entries_acknowledged_meanwhile() -> None:
    """Found by the soak: the group reported pending entries, another reader acknowledged them before XPENDING
    (which then answers no `min`); the drainer failed with a ValueError (a traceback in the log, a lost second)."""

    class Racing:
        def xinfo_groups(self, key: str) -> list[dict[str, Any]]:
            return [{"name": ledger_stream.GROUP, "last-delivered-id": b"5-0", "pending": 1}]

        def xpending(self, key: str, group: str) -> dict[str, Any]:
            return {"pending": 0, "min": None, "max": None, "consumers": []}

    sent = ledger_stream.Sent.__new__(ledger_stream.Sent)
    sent.state, sent.message_id = "streamed", "4-0"
    ledger_stream._outbox["soak-race"] = sent
    try:
        ledger_stream._forget_written(Racing(), "ledger:test")
        assert "soak-race" not in ledger_stream._outbox
    finally:
        ledger_stream._outbox.pop("soak-race", None)
