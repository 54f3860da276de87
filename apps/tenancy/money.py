"""Money in counters: whole units of the ledger's own quantum (10⁻¹⁰ USD), so that a counter is the sum of billed
costs exactly. The one conversion every counter, limit and reservation goes through."""

from __future__ import annotations

from decimal import ROUND_CEILING, Context, Decimal

# The ledger keeps costs to 10 decimal places; a counter counts in that quantum (a signed 64-bit integer holds about
# $922 M of it).
QUANTUM = Decimal("0.0000000001")
UNITS_PER_USD = 10**10
_CONTEXT = Context(prec=60)


def to_units(usd: Decimal | int | str) -> int:
    """USD as counter units. A cost of the ledger converts exactly; anything finer than the quantum rounds up, never
    down, so a reservation never falls short of what it stands for."""
    return int((_CONTEXT.multiply(Decimal(usd), UNITS_PER_USD)).to_integral_value(rounding=ROUND_CEILING))


def from_units(units: int) -> Decimal:
    """Counter units as USD (exact, 10 decimal places)."""
    return _CONTEXT.divide(Decimal(units), UNITS_PER_USD).quantize(QUANTUM, context=_CONTEXT)
