"""Money counters are as exact as the ledger: counted in its own quantum (10⁻¹⁰ USD), reservations rounded up, so a
budget on a model whose calls cost less than half a micro-dollar is reached, never passed, and every surface shows
the ledger's figure to the last digit."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.consumption import admission
from apps.consumption.key_lookup import load_key
from apps.consumption.keys import hash_secret
from apps.consumption.models import UsageRecord
from apps.consumption.routing import route_cache
from apps.consumption.services import create_api_key
from apps.publishing import services as publishing
from apps.tenancy import money, quotas
from apps.tenancy.dashboard import dashboard_data
from apps.tenancy.models import QuotaUsage, Role, Tier
from apps.tenancy.services import set_quota_override
from llm_infra_django.redis import get_redis
from tests.apps.consumption.conftest import ECHO_DEFINITION, drain_ledger
from tests.apps.consumption.test_proxy import post
from tests.apps.tenancy.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


# --- The one conversion ---------------------------------------------------------------------------------------


@given(st.decimals(min_value=0, max_value=10**7, places=10, allow_nan=False, allow_infinity=False))
def test_a_ledger_amount_converts_exactly_both_ways(usd: Decimal) -> None:
    assert money.from_units(money.to_units(usd)) == usd
    assert money.to_units(usd) == usd * 10**10


@pytest.mark.parametrize(
    ("usd", "units"),
    [("0.00000000001", 1), ("0.00000000015", 2), ("0.0000004", 4_000), ("1", 10**10), ("0", 0)],
)
def test_amounts_finer_than_the_quantum_round_up(usd: str, units: int) -> None:
    assert money.to_units(Decimal(usd)) == units


# --- Counters beyond what a double holds ----------------------------------------------------------------------


@pytest.mark.redis
def test_counters_past_2_to_the_53_are_added_and_compared_exactly(consumer: Any, echo_service: Any) -> None:
    """A $1 M month budget is 10¹⁶ units, past the integers a Lua double holds exactly: the scripts add and compare
    such counters exactly (a double would read 9 999 999 999 999 999 as 10¹⁶)."""
    _, secret = create_api_key(tenant=consumer, actor=consumer.owner, name="big", budget_month_usd=Decimal(1_000_000))
    info = load_key(hash_secret(secret))
    month = admission.call_keys(info, "x", info.quota_limits, datetime.now(UTC)).budget_month
    get_redis().set(month, str(10**16 - 1))

    def admit(request_id: str, usd: str) -> admission.Ticket:
        return async_to_sync(admission.admit)(
            key=info,
            request_id=request_id,
            limits=info.quota_limits,
            est_tokens=1,
            est_cost=Decimal(usd),
            timeout_s=1,
        )

    ticket = admit("fits", "0.0000000001")
    assert get_redis().get(month) == b"10000000000000000"
    with pytest.raises(Exception, match="budget_month"):
        admit("one-unit-too-many", "0.0000000001")
    async_to_sync(admission.settle)(ticket, tokens=1, cost=Decimal(0))
    assert get_redis().get(month) == b"9999999999999999"


# --- A budget on a model cheaper than half a micro-dollar per call --------------------------------------------


@pytest.fixture
def cheap_model(provider: Any) -> Decimal:
    """`acme/cheap`: one call of the test's shape (6 prompt tokens, 1 completion token) costs 8·10⁻⁸ USD, which
    micro-dollar counters counted as zero."""
    values = {**ECHO_DEFINITION, "price_input_per_mtok": "0.01", "price_output_per_mtok": "0.02"}
    publishing.publish_service(publisher=provider, actor=provider.owner, slug="cheap", version="1.0.0", values=values)
    return Decimal("0.00000008")


CHEAP_CALL = {"model": "acme/cheap", "max_tokens": 1, "messages": [{"role": "user", "content": "Hi there you"}]}


@pytest.mark.redis
@pytest.mark.timeout(600)  # 10 000 proxied calls: about a minute on a loaded 2-core machine
async def test_ten_thousand_calls_below_half_a_micro_dollar_reach_the_budget_and_never_pass_it(
    cheap_model: Decimal, make_key: Any
) -> None:
    # given a day budget of 600 µ$ and calls of 8·10⁻⁸ USD each (7 500 fit)
    budget = Decimal("0.0006")
    secret = await sync_to_async(make_key)(budget_day_usd=budget)

    # when 10 000 calls are made, 25 at a time
    statuses: list[int] = []
    for _ in range(400):
        answers = await asyncio.gather(*(post("/v1/chat/completions", CHEAP_CALL, secret) for _ in range(25)))
        statuses.extend(answer.status_code for answer in answers)
    await sync_to_async(drain_ledger)(30)

    # then every call was billed its real cost, and the budget stopped them exactly where the ledger reached it
    records = UsageRecord.objects.filter(status_code=200)
    spent = (await records.aaggregate(total=Sum("cost")))["total"]
    assert set(statuses) == {200, 402}
    assert await records.acount() == statuses.count(200) == 7_500
    assert await records.exclude(cost=cheap_model).acount() == 0
    assert spent <= budget < spent + cheap_model


# --- Every surface shows the ledger's figure ------------------------------------------------------------------


prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(50), places=4)


@pytest.mark.redis
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    price_in=prices,
    price_out=prices,
    calls=st.lists(
        st.tuples(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=30)),
        min_size=1,
        max_size=4,
    ),
)
def test_dashboard_apis_graphql_and_ledger_agree_to_the_last_digit(
    provider: Any, price_in: Decimal, price_out: Decimal, calls: list[tuple[int, int]]
) -> None:
    # given a fresh consumer and a service at random prices
    suffix = f"{len(calls)}{abs(hash((price_in, price_out, tuple(calls)))) % 10**9}"
    owner = UserFactory(username=f"owner-{suffix}")
    consumer = TenantFactory(slug=f"c-{suffix}", tier=Tier.PROFESSIONAL)
    MembershipFactory(tenant=consumer, user=owner, role=Role.OWNER)
    operator = UserFactory(username=f"operator-{suffix}", is_staff=True, is_superuser=True)
    set_quota_override(tenant=consumer, quota_type="spend_usd", limit=Decimal(10**6), action="alert", actor=operator)
    values = {**ECHO_DEFINITION, "price_input_per_mtok": str(price_in), "price_output_per_mtok": str(price_out)}
    publishing.publish_service(
        publisher=provider, actor=provider.owner, slug=f"s-{suffix}", version="1.0.0", values=values
    )
    _, secret = create_api_key(tenant=consumer, actor=owner, name="k", scopes=["consume", "read"])
    route_cache.clear()

    # when it makes calls of random sizes
    for words, max_tokens in calls:
        body = {
            "model": f"acme/s-{suffix}",
            "max_tokens": max_tokens,
            "messages": [{"role": "user", "content": " ".join(["word"] * words)}],
        }
        response = async_to_sync(post)("/v1/chat/completions", body, secret)
        assert response.status_code == 200, response.content
    drain_ledger()

    # then every surface says what the ledger says, to the last digit
    ledger = UsageRecord.objects.filter(tenant=consumer).aggregate(total=Sum("cost"))["total"]
    client = Client(headers={"Authorization": f"Bearer {secret}"})
    quota = {row["quota_type"]: row for row in client.get("/api/v1/quota/").json()["quotas"]}
    summary = client.get("/api/v1/usage/summary/?days=1").json()
    query = "{ quota { quotas { quotaType used } } usageSummary(days: 1) { totals { cost } } }"
    graphql = client.post("/graphql", {"query": query}, content_type="application/json").json()["data"]
    gql_quota = {row["quotaType"]: row["used"] for row in graphql["quota"]["quotas"]}
    board = dashboard_data(consumer)
    gauge = {row["quota_type"]: row for row in board["gauges"]}
    figures = {
        "quota API": quota["spend_usd"]["used"],
        "summary API": summary["totals"]["cost"],
        "GraphQL quota": gql_quota["spend_usd"],
        "GraphQL summary": graphql["usageSummary"]["totals"]["cost"],
        "dashboard total": board["totals"]["spend"],
        "dashboard gauge": gauge["spend_usd"]["used"],
        "durable counter": quotas.from_units(
            "spend_usd", QuotaUsage.objects.get(tenant=consumer, quota_type="spend_usd").used
        ),
    }
    assert {name: Decimal(str(value)) for name, value in figures.items()} == dict.fromkeys(figures, ledger)


# --- Existing counters move to the new unit ---------------------------------------------------------------------


def test_rebuilding_quota_usage_makes_counters_equal_the_ledger(cheap_model: Decimal, make_key: Any, consumer: Any):
    # given calls counted, then durable and Redis counters that disagree with the ledger (as after an upgrade)
    secret = make_key(budget_day_usd="1")
    for _ in range(3):
        assert async_to_sync(post)("/v1/chat/completions", CHEAP_CALL, secret).status_code == 200
    drain_ledger()
    QuotaUsage.objects.filter(tenant=consumer).update(used=12345)
    client = get_redis()
    if client is not None:
        for name in client.scan_iter(match=f"quota:{{t:{consumer.pk}}}:*"):
            client.set(name, 999)

    # when
    call_command("rebuild_quota_usage", "--tenant", consumer.slug, stdout=open("/dev/null", "w"))  # noqa: SIM115

    # then the durable counters hold the ledger's sums, and Redis holds none of the stale ones
    used = dict(QuotaUsage.objects.filter(tenant=consumer).values_list("quota_type", "used"))
    assert used["spend_usd"] == money.to_units(3 * cheap_model) == 2_400
    assert used["api_requests"] == 3
    if client is not None:
        assert not [name for name in client.scan_iter(match=f"quota:{{t:{consumer.pk}}}:*") if client.get(name)]
    assert json.loads(json.dumps(used))  # plain integers


def test_the_migration_moves_durable_spend_to_ledger_units(consumer: Any) -> None:
    from importlib import import_module

    from django.apps import apps

    # given a row in micro-dollars, as 0002 left them
    now = datetime.now(UTC)
    QuotaUsage.objects.create(tenant=consumer, quota_type="spend_usd", period_start=now, period_end=now, used=2_500_000)
    QuotaUsage.objects.create(tenant=consumer, quota_type="tokens", period_start=now, period_end=now, used=77)

    import_module("apps.tenancy.migrations.0003_spend_in_ledger_units").to_ledger_units(apps, None)

    used = dict(QuotaUsage.objects.filter(tenant=consumer).values_list("quota_type", "used"))
    assert used == {"spend_usd": 25_000_000_000, "tokens": 77}
    assert quotas.from_units("spend_usd", used["spend_usd"]) == Decimal("2.5")
