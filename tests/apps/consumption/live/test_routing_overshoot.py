"""Routing across offers of different prices keeps budgets exact: two server processes, 64 concurrent clients,
real Redis. Admission reserves at the dearest candidate, settlement charges the serving offer's price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.consumption import tokenizer
from apps.consumption.models import UsageRecord
from tests.apps.consumption.conftest import publish_openai
from tests.apps.consumption.live.test_overshoot import MESSAGES, fire, wait_for_records
from tests.apps.consumption.test_routing import catalog_model, echo_offer, offer

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


# Close enough that every offer gets traffic from the price-weighted draw (weights 1 : 1/4 : 1/9).
PRICES = {"cheap": ("1000", "2000"), "mid": ("2000", "4000"), "dear": ("3000", "6000")}


def call_cost(prompt: int, completion: int, name: str) -> Decimal:
    prompt_price, completion_price = (Decimal(p) for p in PRICES[name])
    return (prompt * prompt_price + completion * completion_price) / 10**6


def test_a_budget_is_never_exceeded_across_offers_of_different_prices(start_servers, make_key, provider) -> None:
    # given a model offered at three prices
    for name, (prompt_price, completion_price) in PRICES.items():
        echo_offer(provider, name, price_input_per_mtok=prompt_price, price_output_per_mtok=completion_price)
    version = catalog_model(provider)
    for name in PRICES:
        offer(provider, version, name)
    prompt = tokenizer.count_chat_prompt_tokens(MESSAGES)
    dearest = call_cost(prompt, 5, "dear")
    budget = dearest * Decimal("10.5")
    urls = start_servers(2)
    secret = make_key(budget_day_usd=str(budget))

    # when 64 clients call it from two processes, far more often than the budget allows
    statuses = fire(urls, secret, 300, {"model": "acme/llama", "messages": MESSAGES, "max_tokens": 5})

    # then calls are answered or refused for the budget, and the ledger bills each at its serving offer's price,
    # never more than the budget in all — and the budget is used up to less than one dearest reservation
    assert set(statuses) <= {200, 402}, set(statuses)
    served = statuses.count(200)
    records = wait_for_records(served)
    assert len(records) == served
    for record in records:
        name = record.provider.split("/")[1].split("@")[0]
        assert record.cost == call_cost(record.prompt_tokens, record.completion_tokens, name)
    billed = sum((record.cost for record in records), Decimal(0))
    assert billed <= budget
    assert 402 in statuses and budget - billed < dearest
    assert len({record.provider for record in records}) >= 2
    assert not UsageRecord.objects.exclude(attempt_of="").exists()


def test_a_call_falling_back_to_a_dearer_offer_never_overshoots_the_budget(
    start_servers, make_key, provider, upstream
) -> None:
    # given a cheap first choice that always fails and a much dearer fallback
    behaviour, url = upstream
    publish_openai(provider, url, slug="cheap", price_input_per_mtok="1000", price_output_per_mtok="2000")
    behaviour.status = 503
    echo_offer(provider, "dear", price_input_per_mtok="20000", price_output_per_mtok="40000")
    version = catalog_model(provider)
    for name in ("cheap", "dear"):
        offer(provider, version, name)
    prompt = tokenizer.count_chat_prompt_tokens(MESSAGES)
    served_cost = (Decimal(prompt) * 20000 + 5 * 40000) / 10**6
    budget = served_cost * Decimal("10.5")
    urls = start_servers(2)
    secret = make_key(budget_day_usd=str(budget))

    # when 64 clients call it, the cheap offer first (admission must reserve the fallback's price, not the first's)
    body = {"model": "acme/llama", "messages": MESSAGES, "max_tokens": 5, "provider": {"order": ["acme/cheap"]}}
    statuses = fire(urls, secret, 120, body)

    # then every answered call was served by the dear offer, and the ledger never bills beyond the budget
    assert set(statuses) <= {200, 402}, set(statuses)
    served = statuses.count(200)
    assert served >= 1
    records = wait_for_records(served, calls_only=True)
    assert len(records) == served and {r.provider for r in records} == {"acme/dear@1.0.0"}
    assert sum((r.cost for r in records), Decimal(0)) <= budget
