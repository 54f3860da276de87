"""The second stage of a proxied call: the model id resolved to the routes it may take, cached in this process (no
SQL once warm). A service id (`<publisher>/<service>[@<version>]`) names one route; a catalog model id
(`<owner>/<model-slug>[@<version>]`) names its offers, the servable service versions of any tenant serving it, which
the call's preferences (its `provider` object, narrowing its key's and tenant's) filter and order, followed by the
offers of each model in its `models` list: the plan of attempts (see choosing.py)."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, TypeGuard, TypeVar

from apps.catalog.offers import ModelOffers, get_model_offers
from apps.consumption import choosing, preferences
from apps.consumption.conf import consumption_settings
from apps.consumption.health import health_cache
from apps.consumption.keys import KeyInfo
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import Status
from apps.publishing.selectors import Route, Unavailable, get_route, get_route_of_version, get_unavailable
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AppError, AuthorizationError, NotFoundError


class RouteCache:
    """Routes by model id (or why a known model id has none) and access decisions by (tenant, service), each for
    `ROUTE_CACHE_SECONDS`."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[float, Route | Unavailable | None]] = {}
        self.offers: dict[str, tuple[float, tuple[ModelOffers | None, tuple[Route, ...]]]] = {}
        # the offers last built from a model's routes: (those routes, the health cache's generation, the offers)
        self.built: dict[str, tuple[tuple[Route, ...], int, list[choosing.Offer]]] = {}
        self.access: dict[tuple[str, str], tuple[float, bool]] = {}

    def clear(self) -> None:
        self.routes.clear()
        self.offers.clear()
        self.built.clear()
        self.access.clear()


route_cache = RouteCache()

# Why a version cannot be called, for callers who may know its service exists (see `resolve_route`).
UNAVAILABLE_BECAUSE: dict[str, str] = {
    Status.DRAFT: "its version {version} is a draft",
    Status.VALIDATING: "its version {version} is still being validated",
    Status.FAILED_VALIDATION: "its version {version} failed validation (its publisher can read why in the report)",
    Status.PENDING_APPROVAL: "its version {version} is waiting for a platform admin's approval",
    Status.REJECTED: "its version {version} was rejected at review",
    Status.SUSPENDED: "its version {version} is suspended",
    Status.DEPRECATED: "its version {version} is deprecated; '{pinned}' can be called until it retires",
    Status.RETIRED: "its version {version} is retired",
}


T = TypeVar("T")


def _fresh(entry: tuple[float, T] | None) -> TypeGuard[tuple[float, T]]:
    return entry is not None and time.monotonic() - entry[0] <= consumption_settings.ROUTE_CACHE_SECONDS


def _lookup_route(model_id: str) -> Route | Unavailable | None:
    try:
        return get_route(model_id)
    except NotFoundError:
        return get_unavailable(model_id)


def _can_use(tenant_id: str, service_id: str, publisher_id: str) -> bool:
    from apps.tenancy.models import Tenant
    from apps.tenancy.sharing import can_use

    tenant = Tenant.objects.get(pk=tenant_id)
    return can_use(tenant, "service", service_id, owner_id=publisher_id)


async def _cached_access(tenant_id: str, resource: str, check: Any, *args: str) -> bool:
    """`check(tenant_id, *args)` (a database read), cached per (tenant, resource) for `ROUTE_CACHE_SECONDS`."""
    access = route_cache.access.get((tenant_id, resource))
    if not _fresh(access):
        access = (time.monotonic(), await database_sync_to_async(check)(tenant_id, *args))
        route_cache.access[(tenant_id, resource)] = access
    return access[1]


async def _has_access(key: KeyInfo, service_id: str, publisher_id: str) -> bool:
    """Whether the key's tenant may use the service (its own, granted or open), cached per (tenant, service)."""
    return await _cached_access(key.tenant_id, service_id, _can_use, service_id, publisher_id)


async def _not_available(model_id: str, found: Route | Unavailable | None, key: KeyInfo) -> NotFoundError:
    """The 404 of a model id without a servable version. Only a tenant that may use the service (its publisher
    included) learns why; to the others an unavailable model looks exactly like an unknown one."""
    reason = UNAVAILABLE_BECAUSE.get(found.status) if found is not None else None
    if found is None or reason is None or not await _has_access(key, found.service_id, found.publisher_id):
        return NotFoundError(message=f"The model '{model_id}' does not exist or is not available.")
    pinned = f"{model_id.partition('@')[0]}@{found.version}"
    because = reason.format(version=found.version, pinned=pinned)
    return NotFoundError(message=f"The model '{model_id}' is not available: {because}.")


async def resolve_route(model_id: str, key: KeyInfo) -> Route:
    """The route of `model` for this key: 404 unknown or not servable, 403 not allowed for the key or its tenant."""
    from apps.publishing.selectors import split_model_id

    split_model_id(model_id)  # 400 for a malformed id
    entry = route_cache.routes.get(model_id)
    if not _fresh(entry):
        entry = (time.monotonic(), await database_sync_to_async(_lookup_route)(model_id))
        route_cache.routes[model_id] = entry
    found = entry[1]
    if not isinstance(found, Route) or found.status not in SERVABLE:
        raise await _not_available(model_id, found, key)
    if not key.allows_model(model_id):
        raise AuthorizationError(f"This API key may not use '{model_id}'.", code="model_not_allowed")
    if not await _has_access(key, found.service_id, found.publisher_id):
        raise AuthorizationError(f"Your tenant has no access to '{model_id}'.", code="model_not_allowed")
    return found


# --- Catalog models: many offers ------------------------------------------------------------------------------


def _load_offers(model_id: str) -> tuple[ModelOffers | None, tuple[Route, ...]]:
    """A catalog model's offers and their routes (named by the model id called), None for another id."""
    offers = get_model_offers(model_id)
    if offers is None:
        return None, ()
    routes = (get_route_of_version(version_id) for version_id in offers.service_version_ids)
    return offers, tuple(replace(route, model_id=model_id) for route in routes if route is not None)


def _can_use_model(tenant_id: str, catalog_model_id: str) -> bool:
    from apps.catalog.offers import visible_to
    from apps.tenancy.models import Tenant

    return visible_to(Tenant.objects.get(pk=tenant_id), catalog_model_id)


async def _may_use_model(key: KeyInfo, offers: ModelOffers) -> bool:
    model_id = offers.catalog_model_id
    return await _cached_access(key.tenant_id, f"model:{model_id}", _can_use_model, model_id)


async def model_offers(model_id: str, key: KeyInfo) -> list[choosing.Offer] | None:
    """The servable offers of the catalog model `model_id` the key may use, with their health (None when the id
    names no catalog model). A model the key's tenant may not use is a 404, as an unknown one."""
    entry = route_cache.offers.get(model_id)
    if not _fresh(entry):
        entry = (time.monotonic(), await database_sync_to_async(_load_offers)(model_id))
        route_cache.offers[model_id] = entry
    offers, routes = entry[1]
    if offers is None:
        return None
    if not await _may_use_model(key, offers):
        raise NotFoundError(message=f"The model '{model_id}' does not exist or is not available.")
    if not key.allows_model(model_id):
        raise AuthorizationError(f"This API key may not use '{model_id}'.", code="model_not_allowed")
    usable = tuple(
        [
            route
            for route in routes
            if route.status in SERVABLE and await _has_access(key, route.service_id, route.publisher_id)
        ]
    )
    return offers_from(model_id, usable)


def offers_from(model_id: str, usable: tuple[Route, ...]) -> list[choosing.Offer]:
    """The offers of these routes with their health, built once per change of either (no SQL, no network)."""
    health = health_cache.get(route.version_id for route in usable)  # (starts a refresh of what is stale)
    built = route_cache.built.get(model_id)
    if built is not None and built[1] == health_cache.generation and built[0] == usable:
        return built[2]
    offers_now = [
        choosing.Offer(
            route,
            healthy=health[route.version_id].healthy,
            p50_ms=health[route.version_id].p50_ms,
            throughput=health[route.version_id].throughput_tps,
        )
        for route in usable
    ]
    route_cache.built[model_id] = (usable, health_cache.generation, offers_now)
    return offers_now


async def _offers_of(model_id: str, key: KeyInfo) -> list[choosing.Offer]:
    offers = await model_offers(model_id, key)
    if offers is not None:
        return offers
    return [choosing.Offer(await resolve_route(model_id, key))]


async def plan_routes(body: dict[str, Any], key: KeyInfo) -> list[Route]:
    """The routes to try for this call, in order: the offers of `model` its preferences allow, then those of each
    model of its `models` list. Takes the routing fields (`provider`, `models`) out of the body: they are ours, never
    forwarded. Errors: the first model's (404, 403), or a 404 when no offer is left."""
    requested, given = preferences.parse(body.pop("provider", None))
    chosen = key.routing.narrowed_by(requested, given)
    model_ids = [body["model"], *preferences.fallback_models(body.pop("models", None))]
    parameters = preferences.request_parameters(body) if chosen.require_parameters else frozenset()
    plan: list[Route] = []
    for index, model_id in enumerate(model_ids):
        try:
            offers = await _offers_of(model_id, key)
        except AppError:
            if index == 0:
                raise
            continue  # an unavailable fallback model is skipped
        for offer in choosing.plan(choosing.allowed(offers, chosen, parameters), chosen):
            if all(offer.route.version_id != taken.version_id for taken in plan):
                plan.append(offer.route)
        if plan and not chosen.allow_fallbacks:
            break
    if not plan:
        raise AppError(
            f"No offer of '{model_ids[0]}' matches the routing preferences (provider).",
            code="no_offer_available",
            status_code=404,
        )
    return plan[: max(1, int(consumption_settings.ROUTING_MAX_ATTEMPTS))]
