"""How a call wants its model routed among competing offers: OpenRouter's `provider` object (`order`, `only`,
`ignore`, `allow_fallbacks`, `sort`, `max_price`, `require_parameters`) plus ours (`data_residency`, `compliance`),
read from the request and merged with the key's and the tenant's routing settings — whose restrictions a request can
narrow, never widen — and the `models` list of model-level fallbacks."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.publishing.models import ComplianceLevel
from llm_infra_django.errors import ValidationError

SORTS = ("price", "latency", "throughput")
MAX_ITEMS = 50
PRICE_KEYS = ("prompt", "completion", "request")
FIELDS = (
    "order",
    "only",
    "ignore",
    "allow_fallbacks",
    "sort",
    "max_price",
    "require_parameters",
    "data_residency",
    "compliance",
)
# The request fields every offer understands: the others are "parameters" that `require_parameters` checks.
CORE_FIELDS = frozenset(
    {"model", "models", "provider", "messages", "prompt", "input", "stream", "stream_options", "user", "n"}
    | {"max_tokens", "max_completion_tokens"}
)


@dataclass(frozen=True)
class Preferences:
    """A call's routing preferences; None/empty means "no preference". Restrictions: `only`, `ignore`,
    `max_price`, `data_residency`, `compliance`; choices: `order`, `sort`, `allow_fallbacks`,
    `require_parameters`."""

    order: tuple[str, ...] = ()
    only: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    allow_fallbacks: bool = True
    sort: str | None = None
    max_price: dict[str, Decimal] = field(default_factory=dict)  # USD per million tokens (`request`: per request)
    require_parameters: bool = False
    data_residency: frozenset[str] | None = None
    compliance: frozenset[str] | None = None

    def narrowed_by(self, request: Preferences, given: frozenset[str]) -> Preferences:
        """These settings (a key's or tenant's) with a request's preferences applied: its restrictions narrow these
        ones (never widen), its choices (the fields it `given`) replace these."""
        if not given:
            return self  # a request without preferences (the common case) changes nothing
        merged = replace(
            self,
            only=_intersection(self.only, request.only),
            ignore=self.ignore | request.ignore,
            max_price={
                name: min(v for v in (self.max_price.get(name), request.max_price.get(name)) if v is not None)
                for name in {*self.max_price, *request.max_price}
            },
            data_residency=_intersection(self.data_residency, request.data_residency),
            compliance=_intersection(self.compliance, request.compliance),
        )
        choices = {name: getattr(request, name) for name in ("order", "sort", "allow_fallbacks", "require_parameters")}
        return replace(merged, **{name: value for name, value in choices.items() if name in given})


NONE = Preferences()
"""No preference at all."""


def _intersection(first: frozenset[str] | None, second: frozenset[str] | None) -> frozenset[str] | None:
    if first is None:
        return second
    return first if second is None else first & second


def _names(value: Any, path: str, *, offers: bool = False) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > MAX_ITEMS:
        raise ValidationError(fields={path: [f"A list of at most {MAX_ITEMS} strings."]})
    names = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item or len(item) > 200:
            raise ValidationError(fields={f"{path}[{index}]": ["A non-empty string of at most 200 characters."]})
        if offers and item.count("/") != 1:
            raise ValidationError(fields={f"{path}[{index}]": ["An offer id: '<publisher>/<service>'."]})
        names.append(item.partition("@")[0] if offers else item)
    return tuple(names)


def _boolean(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(fields={path: ["true or false."]})
    return value


def _prices(value: Any, path: str) -> dict[str, Decimal]:
    if not isinstance(value, dict):
        raise ValidationError(fields={path: ['An object: {"prompt": USD per Mtok, "completion": …, "request": …}.']})
    prices = {}
    for name, amount in value.items():
        if name not in PRICE_KEYS:
            raise ValidationError(fields={f"{path}.{name}": [f"Unknown; use {', '.join(PRICE_KEYS)}."]})
        try:
            parsed = Decimal(str(amount)) if not isinstance(amount, bool) else None
        except InvalidOperation:
            parsed = None
        if parsed is None or not parsed.is_finite() or parsed < 0:
            raise ValidationError(fields={f"{path}.{name}": ["A number ≥ 0 (USD)."]})
        prices[name] = parsed
    return prices


def parse(value: Any, path: str = "provider") -> tuple[Preferences, frozenset[str]]:
    """A `provider` object (or a key's or tenant's routing settings) as `Preferences`, and the fields it gave.
    Unknown fields and bad values are a 400 naming them."""
    if value is None:
        return NONE, frozenset()
    if not isinstance(value, dict):
        raise ValidationError(fields={path: ["An object of routing preferences."]})
    unknown = [name for name in value if name not in FIELDS]
    if unknown:
        raise ValidationError(fields={f"{path}.{name}": [f"Unknown; use {', '.join(FIELDS)}."] for name in unknown})
    values: dict[str, Any] = {}
    for name in ("order", "only", "ignore"):
        if name in value:
            names = _names(value[name], f"{path}.{name}", offers=True)
            values[name] = names if name == "order" else frozenset(names)
    for name in ("allow_fallbacks", "require_parameters"):
        if name in value:
            values[name] = _boolean(value[name], f"{path}.{name}")
    if "sort" in value:
        if value["sort"] not in SORTS:
            raise ValidationError(fields={f"{path}.sort": [f"One of {', '.join(SORTS)}."]})
        values["sort"] = value["sort"]
    if "max_price" in value:
        values["max_price"] = _prices(value["max_price"], f"{path}.max_price")
    if "data_residency" in value:
        codes = _names(value["data_residency"], f"{path}.data_residency")
        values["data_residency"] = frozenset(code.upper() for code in codes)
    if "compliance" in value:
        levels = _names(value["compliance"], f"{path}.compliance")
        bad = [level for level in levels if level not in ComplianceLevel.values]
        if bad:
            allowed = ", ".join(ComplianceLevel.values)
            raise ValidationError(fields={f"{path}.compliance": [f"Unknown level {bad[0]!r}; use {allowed}."]})
        values["compliance"] = frozenset(levels)
    return Preferences(**values), frozenset(values)


def clean(value: Any, path: str = "routing") -> dict[str, Any]:
    """Stored routing settings (a tenant's or a key's): the object, checked as a request's `provider` is (400s
    naming `<path>.<field>`)."""
    if value in (None, ""):
        return {}
    parse(value, path)
    return dict(value)


def settings_of(tenant_routing: Any, key_routing: Any) -> Preferences:
    """The preferences every call of a key starts from: its tenant's narrowed by its own (both stored, so valid)."""
    tenant, _ = parse(tenant_routing or None, "tenant.routing")
    key, given = parse(key_routing or None, "key.routing")
    return tenant.narrowed_by(key, given)


def fallback_models(value: Any) -> tuple[str, ...]:
    """The `models` list: model ids tried after `model`, in order."""
    if value is None:
        return ()
    return _names(value, "models")


def request_parameters(body: dict[str, Any]) -> frozenset[str]:
    """The parameters a request uses beyond the fields every offer understands (for `require_parameters`)."""
    return frozenset(name for name in body if name not in CORE_FIELDS)
