"""A prepaid balance never goes below zero: two server processes, 64 concurrent clients, real Redis."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.billing import selectors, services
from apps.consumption import tokenizer
from tests.apps.consumption.live.test_overshoot import MESSAGES, fire, wait_for_records

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]


def test_a_prepaid_balance_never_goes_negative_under_concurrency(start_servers, make_key, consumer, echo_service):
    # given a prepaid tenant credited with 10.5 calls' worth
    prompt = tokenizer.count_chat_prompt_tokens(MESSAGES)
    cost = (Decimal(prompt) * 1000 + 5 * 2000) / 10**6
    services.set_prepaid(tenant=consumer, prepaid=True)
    services.grant_credits(tenant=consumer, amount=cost * Decimal("10.5"))
    urls = start_servers(2)
    secret = make_key()

    # when 64 clients spend it from two processes
    statuses = fire(urls, secret, 80, {"model": "acme/echo", "messages": MESSAGES, "max_tokens": 5})

    # then exactly ten are answered, the others refused for the balance, and the balance stays above zero
    assert statuses.count(200) == 10 and statuses.count(402) == 70
    records = wait_for_records(10)
    assert sum((r.cost for r in records), Decimal(0)) == cost * 10
    assert selectors.balance(consumer)["balance"] == cost * Decimal("0.5")
