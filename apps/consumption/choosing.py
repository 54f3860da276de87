"""Which offer serves a routed call, and which follow if it fails: the offers a call's preferences allow, in the
order they ask (`order`, then `sort`), else — as OpenRouter documents — a random pick weighted by the inverse square
of the price among healthy offers; offers that are unhealthy (recent availability under the threshold, or their
breaker seen open) only get fallback traffic."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from apps.consumption.preferences import Preferences
from apps.publishing.selectors import Route

# Tests seed it (`choosing.rng.seed(…)`) to make picks deterministic.
rng = random.Random()
# The price of a nominal call (a thousand prompt and a thousand completion tokens) is what offers are compared by:
# it orders per-token and per-request prices alike.
NOMINAL_TOKENS = 1000
_FREE = 1e-9


@dataclass(frozen=True, eq=False)
class Offer:
    """A route a call may take, with what routing knows of its health. Compared by identity; its id and the price
    it is compared by are computed once."""

    route: Route
    healthy: bool = True
    p50_ms: float | None = None
    throughput: float | None = None  # completion tokens per second, measured
    offer_id: str = field(init=False)  # `<publisher>/<service>`: how preferences name it
    nominal_price: float = field(init=False)  # USD of a nominal call (see NOMINAL_TOKENS)

    def __post_init__(self) -> None:
        route = self.route
        object.__setattr__(self, "offer_id", f"{route.publisher_slug}/{route.service_slug}")
        object.__setattr__(self, "nominal_price", _nominal(route))


def _nominal(route: Route) -> float:
    """What a nominal call costs at the route's prices, as a float (only compared, never billed)."""
    if route.pricing_model == "per_token":
        return (float(route.price_input_per_mtok or 0) + float(route.price_output_per_mtok or 0)) * NOMINAL_TOKENS / 1e6
    if route.pricing_model == "per_request":
        return float(route.price_per_request or 0)
    return 0.0


def _within(route: Route, max_price: dict[str, Decimal]) -> bool:
    limits = (
        ("prompt", route.price_input_per_mtok),
        ("completion", route.price_output_per_mtok),
        ("request", route.price_per_request),
    )
    return all(name not in max_price or (value or 0) <= max_price[name] for name, value in limits)


def allowed(offers: Iterable[Offer], preferences: Preferences, parameters: frozenset[str]) -> list[Offer]:
    """The offers the preferences allow: `only`, `ignore`, `max_price`, `data_residency` (all of an offer's processing
    within the allowed countries), `compliance`, and with `require_parameters` only offers declaring every parameter
    the request uses."""
    if (
        preferences.only is None
        and not preferences.ignore
        and not preferences.max_price
        and (
            preferences.data_residency is None and preferences.compliance is None and not preferences.require_parameters
        )
    ):
        return list(offers)
    found = []
    for offer in offers:
        route = offer.route
        if preferences.only is not None and offer.offer_id not in preferences.only:
            continue
        if offer.offer_id in preferences.ignore or not _within(route, preferences.max_price):
            continue
        residency = preferences.data_residency
        if residency is not None and not (route.data_residency and set(route.data_residency) <= residency):
            continue
        if preferences.compliance is not None and route.compliance_level not in preferences.compliance:
            continue
        if preferences.require_parameters and not parameters <= route.parameters:
            continue
        found.append(offer)
    return found


def _by_sort(offers: Sequence[Offer], sort: str) -> list[Offer]:
    if sort == "price":
        return sorted(offers, key=lambda o: o.nominal_price)
    if sort == "latency":
        return sorted(offers, key=lambda o: (o.p50_ms is None, o.p50_ms or 0.0, o.nominal_price))
    return sorted(offers, key=lambda o: (o.throughput is None, -(o.throughput or 0.0), o.nominal_price))


def _weighted(offers: Sequence[Offer]) -> list[Offer]:
    """A random order where each draw favours an offer by the inverse square of its price (Efraimidis–Spirakis: one
    exponential key per offer, so the whole order costs one sort)."""
    keyed = []
    for offer in offers:
        weight = 1 / max(offer.nominal_price, _FREE) ** 2
        keyed.append((-math.log(1.0 - rng.random()) / weight, offer.route.version_id, offer))
    keyed.sort(key=lambda item: (item[0], item[1]))
    return [offer for *_, offer in keyed]


def plan(offers: Sequence[Offer], preferences: Preferences) -> list[Offer]:
    """The offers in the order to try them (only the first when fallbacks are off): those named in `order` first,
    then the healthy ones (by `sort`, else weighted by price), then the unhealthy ones (cheapest first)."""
    listed = [offer for name in preferences.order for offer in offers if offer.offer_id == name]
    taken = {id(offer) for offer in listed}
    rest = [offer for offer in offers if id(offer) not in taken]
    healthy = [offer for offer in rest if offer.healthy]
    unhealthy = _by_sort([offer for offer in rest if not offer.healthy], preferences.sort or "price")
    ordered = listed + (_by_sort(healthy, preferences.sort) if preferences.sort else _weighted(healthy)) + unhealthy
    return ordered[:1] if not preferences.allow_fallbacks else ordered
