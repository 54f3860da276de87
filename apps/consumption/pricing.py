"""What a call costs at its route's prices, and what admission reserves for it (Decimal, the ledger's quantum)."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

from apps.publishing.selectors import Route
from apps.tenancy.money import QUANTUM

# Wide enough for any product of a token count and a price (DecimalField(20, 10)): never an InvalidOperation.
_PRICE_CONTEXT = Context(prec=60)


def price(route: Route, prompt_tokens: int, completion_tokens: int, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """The cost of a call at the route's prices (Decimal, 10 places: the ledger's quantum, `rounding` to it)."""
    with localcontext(_PRICE_CONTEXT):
        cost = Decimal(0)
        if route.pricing_model == "per_token":
            cost += Decimal(prompt_tokens) * (route.price_input_per_mtok or 0) / 1_000_000
            cost += Decimal(completion_tokens) * (route.price_output_per_mtok or 0) / 1_000_000
        elif route.pricing_model == "per_request":
            cost += route.price_per_request or Decimal(0)
        return cost.quantize(QUANTUM, rounding=rounding)


def reservation_price(route: Route, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """What admission reserves for these token counts: their price rounded up, so never less than any cost billed
    for fewer tokens."""
    return price(route, prompt_tokens, completion_tokens, rounding=ROUND_CEILING)


def price_snapshot(route: Route) -> dict[str, Any]:
    """The prices a record was billed at (kept with it)."""
    return {
        "pricing_model": route.pricing_model,
        "input_per_mtok": str(route.price_input_per_mtok) if route.price_input_per_mtok is not None else None,
        "output_per_mtok": str(route.price_output_per_mtok) if route.price_output_per_mtok is not None else None,
        "per_request": str(route.price_per_request) if route.price_per_request is not None else None,
        "version": route.version,
    }
