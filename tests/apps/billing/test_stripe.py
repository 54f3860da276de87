"""The Stripe webhook, with real signatures computed with a test endpoint secret (no network): a completed Checkout
Session credits its tenant exactly once (replays too); a bad, tampered or stale signature is a 400 and credits
nothing; without Stripe settings the endpoint is off."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client, override_settings

from apps.billing import selectors
from apps.billing.models import CreditGrant, PaymentEvent

pytestmark = pytest.mark.django_db

SECRET = "whsec_test_0123456789abcdef"
URL = "/api/v1/billing/stripe/webhook/"
STRIPE = override_settings(MARKETPLACE_BILLING={"STRIPE_WEBHOOK_SECRET": SECRET})


def checkout_event(event_id: str = "evt_1", tenant: str = "globex", cents: Any = 2500, currency: str = "usd") -> bytes:
    session = {
        "id": "cs_test_1",
        "object": "checkout.session",
        "amount_total": cents,
        "currency": currency,
        "payment_status": "paid",
        "metadata": {"tenant": tenant},
    }
    event = {"id": event_id, "object": "event", "type": "checkout.session.completed", "data": {"object": session}}
    return json.dumps(event).encode()


def signature(payload: bytes, *, secret: str = SECRET, at: int | None = None) -> str:
    """Stripe's scheme: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>" with the endpoint secret>`."""
    timestamp = int(time.time()) if at is None else at
    signed = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signed}"


def deliver(payload: bytes, sig: str | None) -> Any:
    headers = {"Stripe-Signature": sig} if sig is not None else {}
    return Client().post(URL, payload, content_type="application/json", headers=headers)


@STRIPE
def test_a_completed_checkout_credits_its_tenant_once_replays_included(consumer: Any) -> None:
    payload = checkout_event()
    first = deliver(payload, signature(payload))
    assert first.status_code == 200, first.content
    assert first.json() == {"received": True, "event": "evt_1", "outcome": "credited"}
    replay = deliver(payload, signature(payload))  # Stripe retries; an attacker replays
    assert replay.status_code == 200 and replay.json()["outcome"] == "credited"
    grant = CreditGrant.objects.get(tenant=consumer)
    assert grant.amount_usd == Decimal("25") and grant.source == "payment" and grant.memo == "Stripe evt_1"
    assert PaymentEvent.objects.get(event_id="evt_1").grant == grant
    assert selectors.credited(consumer.pk) == Decimal("25")


@STRIPE
@pytest.mark.parametrize(
    "sig",
    [
        None,
        "nonsense",
        "t=1,v1=00",
        "wrong secret",
        "stale",
    ],
)
def test_a_signature_that_does_not_verify_is_a_400_and_credits_nothing(consumer: Any, sig: str | None) -> None:
    payload = checkout_event()
    if sig == "wrong secret":
        sig = signature(payload, secret="whsec_someone_else")
    elif sig == "stale":
        sig = signature(payload, at=int(time.time()) - 3600)
    response = deliver(payload, sig)
    assert response.status_code == 400, response.content
    assert not CreditGrant.objects.exists() and not PaymentEvent.objects.exists()


@STRIPE
def test_a_tampered_payload_is_refused(consumer: Any) -> None:
    signed = checkout_event(cents=100)
    response = deliver(checkout_event(cents=10_000_000), signature(signed))
    assert response.status_code == 400
    assert not CreditGrant.objects.exists()


@STRIPE
@pytest.mark.parametrize(
    ("payload", "outcome"),
    [
        (checkout_event(tenant="nobody"), "refused"),
        (checkout_event(currency="eur"), "refused"),
        (checkout_event(cents=-5), "refused"),
        (checkout_event(cents="25"), "refused"),
        (json.dumps({"id": "evt_2", "type": "customer.created", "data": {"object": {}}}).encode(), "ignored"),
    ],
)
def test_events_that_move_no_money_are_recorded_and_credit_nothing(consumer: Any, payload: bytes, outcome: str) -> None:
    response = deliver(payload, signature(payload))
    assert response.status_code == 200 and response.json()["outcome"] == outcome
    assert not CreditGrant.objects.exists()
    assert PaymentEvent.objects.get().outcome == outcome


def test_without_stripe_settings_the_endpoint_is_off(consumer: Any) -> None:
    payload = checkout_event()
    assert deliver(payload, signature(payload)).status_code == 404
    assert not CreditGrant.objects.exists()


@STRIPE
def test_the_admin_lists_payment_events_and_grants(consumer: Any) -> None:
    from tests.apps.tenancy.factories import UserFactory

    payload = checkout_event()
    deliver(payload, signature(payload))
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(root)
    events = client.get("/admin/billing/paymentevent/")
    grants = client.get("/admin/billing/creditgrant/")
    assert events.status_code == 200 and "evt_1" in events.content.decode()
    assert grants.status_code == 200 and "Stripe evt_1" in grants.content.decode()
