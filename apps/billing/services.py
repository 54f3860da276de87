"""State changes of billing: a tenant's account (prepaid or postpaid) and credit grants."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction

from apps.billing.models import BillingAccount, CreditGrant
from apps.tenancy.audit import acting_user, record_audit
from apps.tenancy.models import Tenant
from llm_infra_django.errors import ValidationError

MAX_GRANT = Decimal("1000000000")


def _forget_cached_keys(tenant: Tenant) -> None:
    """This worker's cached keys of the tenant carry its old credit; the others read the new one within
    `KEY_CACHE_SECONDS`."""
    from apps.consumption.keys import key_cache

    key_cache.forget_tenant(str(tenant.pk))


@transaction.atomic
def set_prepaid(*, tenant: Tenant, prepaid: bool, actor: Any = None) -> BillingAccount:
    """Make the tenant prepaid (calls admitted only within its credit) or postpaid. Platform staff decide."""
    account, _ = BillingAccount.objects.select_for_update().get_or_create(tenant=tenant)
    before = account.prepaid
    account.prepaid = bool(prepaid)
    account.save(update_fields=["prepaid", "updated_at"])
    record_audit(
        action="billing_prepaid_changed",
        tenant=tenant,
        actor=actor,
        obj=account,
        before={"prepaid": before},
        after={"prepaid": account.prepaid},
    )
    transaction.on_commit(lambda: _forget_cached_keys(tenant))
    return account


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount == 0 or abs(amount) > MAX_GRANT or amount.as_tuple().exponent < -10:
        raise ValidationError(
            fields={"amount": ["A non-zero amount in USD (at most 10 decimal places, at most 1 000 000 000)."]}
        )
    return amount


@transaction.atomic
def grant_credits(
    *, tenant: Tenant, amount: Any, memo: str = "", actor: Any = None, source: str = CreditGrant.Source.GRANT
) -> CreditGrant:
    """Credit the tenant (a negative amount corrects an earlier grant). Audited; applies at the tenant's next
    admissions (this worker at once, the others within `KEY_CACHE_SECONDS`)."""
    value = _amount(amount)
    if len(memo) > 500:
        raise ValidationError(fields={"memo": ["At most 500 characters."]})
    grant = CreditGrant.objects.create(
        tenant=tenant, amount_usd=value, memo=memo, source=source, created_by=acting_user(actor)
    )
    record_audit(
        action="billing_credit_granted",
        tenant=tenant,
        actor=actor,
        obj=grant,
        after={"amount_usd": str(value), "memo": memo, "source": source},
    )
    transaction.on_commit(lambda: _forget_cached_keys(tenant))
    return grant
