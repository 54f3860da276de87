"""Management commands of the consumption app: `rollup_usage` rebuilds the daily rollups from the raw records."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.utils import timezone

from apps.consumption.models import UsageRecord, UsageRollup
from tests.apps.consumption.test_usage import Traffic, entry, make_traffic, write

pytestmark = pytest.mark.django_db


@pytest.fixture
def traffic(provider: Any, echo_service: Any, consumer: Any) -> Traffic:
    return make_traffic(provider, echo_service, consumer)


def test_rollup_usage_rebuilds_lost_rollups_equal_to_the_raw_records(traffic: Traffic) -> None:
    now = timezone.now()
    yesterday, three_days_ago = now - timedelta(days=1), now - timedelta(days=3)
    write([entry(traffic, started_at=yesterday, cost=Decimal("0.25"), prompt=7, completion=3) for _ in range(4)])
    write([entry(traffic, started_at=three_days_ago, cost=Decimal("1"), status=500) for _ in range(2)])
    write([entry(traffic, started_at=now) for _ in range(3)])  # today: outside the default range
    before = list(UsageRollup.objects.order_by("day").values("day", "requests", "errors", "cost", "prompt_tokens"))
    UsageRollup.objects.filter(day__lt=now.date()).delete()

    out = StringIO()
    call_command("rollup_usage", stdout=out)

    after = list(UsageRollup.objects.order_by("day").values("day", "requests", "errors", "cost", "prompt_tokens"))
    assert after == before
    assert "Rebuilt 2 rollup rows" in out.getvalue()
    raw = UsageRecord.objects.aggregate(cost=Sum("cost"))["cost"]
    assert UsageRollup.objects.aggregate(cost=Sum("cost"))["cost"] == raw


def test_rollup_usage_twice_counts_nothing_twice(traffic: Traffic) -> None:
    yesterday = timezone.now() - timedelta(days=1)
    write([entry(traffic, started_at=yesterday) for _ in range(5)])
    call_command("rollup_usage", stdout=StringIO())
    call_command("rollup_usage", stdout=StringIO())
    assert UsageRollup.objects.get().requests == 5


def test_rollup_usage_refuses_bad_days(db: Any) -> None:
    with pytest.raises(CommandError, match="Not a day"):
        call_command("rollup_usage", "--since", "yesterday")
    with pytest.raises(CommandError, match="after"):
        call_command("rollup_usage", "--since", "2026-02-02", "--until", "2026-02-01")
