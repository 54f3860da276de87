"""Prepaid credit: a prepaid tenant's calls are admitted only while their reservation fits what its credit has left
(402 `insufficient_balance` otherwise, nothing billed); grants arrive through the command, the admin and the service;
the balance endpoint tells what is left. Real Redis, and the in-process admission without it."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.management import CommandError, call_command
from django.test import AsyncClient, override_settings
from rest_framework.test import APIClient

from apps.billing import selectors, services
from apps.billing.models import CreditGrant
from apps.consumption import tokenizer
from apps.consumption.models import UsageRecord
from apps.tenancy.models import AuditLog
from tests.apps.consumption.conftest import drain_ledger

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "user", "content": "Hello there, general Kenobi"}]
LOCAL = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": "billing"}}


def call_cost() -> Decimal:
    """What one echo call with max_tokens=5 costs at the echo service's prices (1000 / 2000 USD per Mtok)."""
    prompt = tokenizer.count_chat_prompt_tokens(MESSAGES)
    return (Decimal(prompt) * 1000 + 5 * 2000) / 10**6


async def chat(secret: str) -> Any:
    return await AsyncClient().post(
        "/v1/chat/completions",
        json.dumps({"model": "acme/echo", "messages": MESSAGES, "max_tokens": 5}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


@pytest.mark.parametrize("redis", [pytest.param(True, marks=pytest.mark.redis), False])
async def test_a_prepaid_tenant_is_admitted_only_within_its_credit(
    consumer: Any, echo_service: Any, make_key: Any, redis: bool
) -> None:
    from contextlib import nullcontext

    with nullcontext() if redis else override_settings(CACHES=LOCAL):
        # given a prepaid tenant credited with 3.5 calls
        cost = call_cost()
        await sync_to_async(services.set_prepaid)(tenant=consumer, prepaid=True)
        await sync_to_async(services.grant_credits)(tenant=consumer, amount=cost * Decimal("3.5"), memo="trial")
        secret = await sync_to_async(make_key)()

        # when it calls five times
        answers = [await chat(secret) for _ in range(5)]

        # then three are answered, the others refused for the balance, and nothing is billed beyond the credit
        assert [a.status_code for a in answers] == [200, 200, 200, 402, 402], answers[3].content
        assert answers[3].json()["error"]["code"] == "insufficient_balance"
        await sync_to_async(drain_ledger)()
        billed = sum([r.cost async for r in UsageRecord.objects.all()], Decimal(0))
        assert billed == cost * 3
        state = await sync_to_async(selectors.balance)(consumer)
        assert state["balance"] == cost * Decimal("0.5") and state["prepaid"]

        # when credit arrives, calls are admitted again
        await sync_to_async(services.grant_credits)(tenant=consumer, amount=cost, memo="top-up")
        assert (await chat(secret)).status_code == 200


async def test_a_postpaid_tenant_has_no_balance_to_keep(consumer: Any, echo_service: Any, make_key: Any) -> None:
    await sync_to_async(services.grant_credits)(tenant=consumer, amount="0.000001")  # credit, but not prepaid
    secret = await sync_to_async(make_key)()
    assert [(await chat(secret)).status_code for _ in range(3)] == [200, 200, 200]


def test_grants_through_the_command_are_audited_and_bad_ones_refused(consumer: Any, capsys: Any) -> None:
    call_command("grant_credits", "globex", "25", "--memo", "welcome", "--prepaid")
    assert "Granted 25 USD to globex: balance 25 USD, prepaid." in capsys.readouterr().out
    grant = CreditGrant.objects.get(tenant=consumer)
    assert grant.amount_usd == 25 and grant.memo == "welcome" and grant.source == "grant"
    assert AuditLog.objects.filter(action="billing_credit_granted", tenant=consumer).exists()
    call_command("grant_credits", "globex", "-5", "--memo", "correction")
    assert selectors.balance(consumer)["balance"] == 20
    for amount in ("0", "abc", "1e12", "0.00000000001"):
        with pytest.raises(CommandError):
            call_command("grant_credits", "globex", amount)
    with pytest.raises(CommandError):
        call_command("grant_credits", "nobody", "5")
    with pytest.raises(PermissionError):
        grant.delete()


def test_the_balance_endpoint_tells_the_keys_tenant_what_is_left(consumer: Any, make_key: Any) -> None:
    services.set_prepaid(tenant=consumer, prepaid=True)
    services.grant_credits(tenant=consumer, amount="12.5")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(scopes=['read'])}")
    body = client.get("/api/v1/billing/balance/").json()
    assert body == {
        "tenant": "globex",
        "prepaid": True,
        "currency": "USD",
        "credited": "12.5",
        "billed": "0",
        "balance": "12.5",
    }
    anonymous = APIClient().get("/api/v1/billing/balance/")
    assert anonymous.status_code in (401, 403)
