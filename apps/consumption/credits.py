"""Prepaid credit, as admission sees it: how much a prepaid tenant was credited in all (grants and payments), asked of
the layer that keeps the books (`apps.billing` registers itself here; consumption never imports it). A tenant with no
answer (None) is postpaid: its budgets and quotas apply, no balance."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

CreditSource = Callable[[str], Decimal | None]
_source: CreditSource | None = None


def register_credit_source(source: CreditSource | None) -> None:
    """Install the function telling a tenant's total credits (USD), or None for a postpaid tenant."""
    global _source
    _source = source


def credited(tenant_id: str) -> Decimal | None:
    """The tenant's total credits (USD) when it is prepaid, else None."""
    return _source(tenant_id) if _source is not None else None
