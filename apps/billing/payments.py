"""Stripe top-ups: the webhook's events verified with the endpoint's signing secret (Stripe's own library), each
event id taken once, and a completed Checkout Session credited to the tenant its metadata names. Untrusted input:
whatever does not verify is refused before anything is read from it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import stripe
import structlog
from django.db import IntegrityError, transaction

from apps.billing import services
from apps.billing.conf import billing_settings
from apps.billing.models import CreditGrant, PaymentEvent
from apps.tenancy.models import Tenant
from llm_infra_django.errors import NotFoundError, ValidationError

logger = structlog.get_logger(__name__)
CHECKOUT_COMPLETED = "checkout.session.completed"


def webhook_enabled() -> bool:
    return bool(billing_settings.STRIPE_WEBHOOK_SECRET)


def verified_event(payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event, once its `Stripe-Signature` proves the endpoint's secret signed this very payload recently; a 400
    otherwise (nothing else is read from an unverified payload)."""
    if not webhook_enabled():
        raise NotFoundError(message="Stripe payments are not configured.")
    try:
        event = stripe.Webhook.construct_event(
            payload,
            signature or "",
            billing_settings.STRIPE_WEBHOOK_SECRET,
            tolerance=int(billing_settings.STRIPE_TOLERANCE_SECONDS),
        )
    except stripe.SignatureVerificationError:
        logger.warning("stripe_signature_refused")
        raise ValidationError(
            "The Stripe signature does not verify.", fields={"Stripe-Signature": ["Invalid."]}
        ) from None
    except ValueError:
        raise ValidationError("The payload is not a Stripe event.", fields={"body": ["Invalid JSON."]}) from None
    data = event.to_dict() if hasattr(event, "to_dict") else dict(event)
    if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
        raise ValidationError("The payload is not a Stripe event.", fields={"body": ["No id or type."]})
    return data


def _checkout(event: dict[str, Any]) -> tuple[Tenant | None, Decimal | None, str]:
    """(tenant, amount in USD, why not) of a completed Checkout Session."""
    session = (event.get("data") or {}).get("object") or {}
    if not isinstance(session, dict):
        return None, None, "no session"
    slug = (session.get("metadata") or {}).get("tenant")
    tenant = Tenant.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if tenant is None:
        return None, None, f"unknown tenant {str(slug)[:100]!r}"
    if str(session.get("currency") or "").lower() != str(billing_settings.CURRENCY).lower():
        return tenant, None, f"currency {str(session.get('currency'))[:10]!r}"
    cents = session.get("amount_total")
    if isinstance(cents, bool) or not isinstance(cents, int) or cents <= 0:
        return tenant, None, "amount_total is not a positive whole number of cents"
    if session.get("payment_status") not in (None, "paid", "no_payment_required"):
        return tenant, None, f"payment status {str(session.get('payment_status'))[:20]!r}"
    return tenant, Decimal(cents) / 100, ""


def take_event(event: dict[str, Any]) -> PaymentEvent:
    """Apply a verified event once: a completed Checkout Session credits its tenant (a payment grant); a replay of
    an event already taken returns that first record and changes nothing."""
    found = PaymentEvent.objects.filter(event_id=event["id"]).first()
    if found is not None:
        return found
    outcome, detail, tenant, grant = PaymentEvent.Outcome.IGNORED, "", None, None
    try:
        with transaction.atomic():
            if event["type"] == CHECKOUT_COMPLETED:
                tenant, amount, detail = _checkout(event)
                if amount is None:
                    outcome = PaymentEvent.Outcome.REFUSED
                else:
                    assert tenant is not None
                    grant = services.grant_credits(
                        tenant=tenant,
                        amount=amount,
                        memo=f"Stripe {event['id']}"[:500],
                        source=CreditGrant.Source.PAYMENT,
                    )
                    outcome = PaymentEvent.Outcome.CREDITED
            return PaymentEvent.objects.create(
                event_id=event["id"][:255],
                event_type=event["type"][:100],
                outcome=outcome,
                detail=detail[:500],
                tenant=tenant,
                grant=grant,
            )
    except IntegrityError:
        # The same event delivered twice at once: the other delivery took it (and credited, if anything).
        return PaymentEvent.objects.get(event_id=event["id"])
