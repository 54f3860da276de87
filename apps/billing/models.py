"""Prepaid credit: a tenant's billing account (prepaid or postpaid) and the credits it received, append-only."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models

CREDIT = {"max_digits": 20, "decimal_places": 10}


class BillingAccount(models.Model):
    """How a tenant pays: prepaid (calls are admitted only while their reservation fits the credit left) or postpaid
    (budgets and quotas only). A tenant without an account is postpaid."""

    tenant = models.OneToOneField(
        "tenancy.Tenant", on_delete=models.CASCADE, primary_key=True, related_name="billing_account"
    )
    prepaid = models.BooleanField(default=False)
    low_balance_usd = models.DecimalField(
        "low-balance alert (USD)", max_digits=20, decimal_places=6, null=True, blank=True
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "billing account"

    def __str__(self) -> str:
        return f"{self.tenant} ({'prepaid' if self.prepaid else 'postpaid'})"


class CreditGrant(models.Model):
    """Credit a tenant received: a platform grant or a payment. Append-only; a correction is a negative grant."""

    class Source(models.TextChoices):
        GRANT = "grant"
        PAYMENT = "payment"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.PROTECT, related_name="credit_grants")
    amount_usd = models.DecimalField(**CREDIT)
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.GRANT)
    memo = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["tenant", "-created_at"], name="billing_grant_tenant")]

    def __str__(self) -> str:
        return f"{self.amount_usd} USD to {self.tenant_id} ({self.source})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise PermissionError("Credit grants are append-only; correct one with a negative grant.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise PermissionError("Credit grants are append-only; correct one with a negative grant.")


class PaymentEvent(models.Model):
    """A Stripe event the webhook received, once per event id (replays are recognised and change nothing): what it
    credited, or why it credited nothing."""

    class Outcome(models.TextChoices):
        CREDITED = "credited"
        IGNORED = "ignored"  # an event type that moves no money
        REFUSED = "refused"  # a payment the books cannot take (unknown tenant, other currency, bad amount)

    event_id = models.CharField(max_length=255, primary_key=True)
    event_type = models.CharField(max_length=100)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    detail = models.CharField(max_length=500, blank=True, default="")
    tenant = models.ForeignKey("tenancy.Tenant", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    grant = models.OneToOneField(CreditGrant, on_delete=models.PROTECT, null=True, blank=True, related_name="payment")
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} ({self.outcome})"
