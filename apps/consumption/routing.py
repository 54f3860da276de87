"""The second stage of a proxied call: the model id resolved to the route of a servable service version the key's
tenant may use, cached in this process (no SQL once warm)."""

from __future__ import annotations

import time
from typing import TypeGuard, TypeVar

from apps.consumption.conf import consumption_settings
from apps.consumption.keys import KeyInfo
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import Status
from apps.publishing.selectors import Route, Unavailable, get_route, get_unavailable
from llm_infra_django.db import database_sync_to_async
from llm_infra_django.errors import AuthorizationError, NotFoundError


class RouteCache:
    """Routes by model id (or why a known model id has none) and access decisions by (tenant, service), each for
    `ROUTE_CACHE_SECONDS`."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[float, Route | Unavailable | None]] = {}
        self.access: dict[tuple[str, str], tuple[float, bool]] = {}

    def clear(self) -> None:
        self.routes.clear()
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


async def _has_access(key: KeyInfo, service_id: str, publisher_id: str) -> bool:
    """Whether the key's tenant may use the service (its own, granted or open), cached per (tenant, service)."""
    access_key = (key.tenant_id, service_id)
    access = route_cache.access.get(access_key)
    if not _fresh(access):
        access = (time.monotonic(), await database_sync_to_async(_can_use)(key.tenant_id, service_id, publisher_id))
        route_cache.access[access_key] = access
    return access[1]


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
