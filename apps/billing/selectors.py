"""What a tenant has: its credits, what it was billed, its balance."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Sum

from apps.billing.models import BillingAccount, CreditGrant
from apps.consumption.selectors import tenant_billed


def is_prepaid(tenant_id: Any) -> bool:
    return BillingAccount.objects.filter(tenant_id=tenant_id, prepaid=True).exists()


def credited(tenant_id: Any) -> Decimal:
    """Every credit the tenant received (USD)."""
    total = CreditGrant.objects.filter(tenant_id=tenant_id).aggregate(total=Sum("amount_usd"))["total"]
    return Decimal(total or 0)


def credit_of(tenant_id: str) -> Decimal | None:
    """For admission: a prepaid tenant's total credits, None for a postpaid one."""
    return credited(tenant_id) if is_prepaid(tenant_id) else None


def billed(tenant_id: Any) -> Decimal:
    """What the tenant was billed, ever (the usage ledger's daily rollups)."""
    return tenant_billed(tenant_id)


def balance(tenant: Any) -> dict[str, Any]:
    """The tenant's balance: credits less what it was billed (recorded calls; calls in flight are not in it yet)."""
    credits, spent = credited(tenant.pk), billed(tenant.pk)
    return {
        "tenant": tenant.slug,
        "prepaid": is_prepaid(tenant.pk),
        "currency": "USD",
        "credited": credits,
        "billed": spent,
        "balance": credits - spent,
    }
