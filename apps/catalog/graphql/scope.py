"""Who is looking and who may write, for the catalog's GraphQL resolvers: the same rules as the REST views."""

from __future__ import annotations

from typing import Any

import graphene

from apps.catalog import selectors
from apps.tenancy.context import require_tenant
from apps.tenancy.models import Role, Tenant
from apps.tenancy.permissions import has_role
from llm_infra_django.errors import AuthorizationError, NotFoundError
from llm_infra_django.graphql import Check, key_scope, node_pk

# Catalog writes need a key with the publish scope (`admin` implies it), as the REST API's key authentication.
WRITE = key_scope("publish")


def viewer(info: graphene.ResolveInfo) -> selectors.Viewer:
    """Who is looking (anonymous callers see public rows only); cached on the request."""
    return selectors.viewer_of_request(info.context)


def acting_tenant(info: graphene.ResolveInfo) -> Tenant:
    """The tenant a write is made for: the API key's, the `X-Tenant` header's or the caller's only one."""
    return require_tenant(info.context)


def acting_role(minimum: str) -> Check:
    """A check: the caller holds `minimum` in the acting tenant (an API key by the role it acts with), as the REST
    training-run views require."""

    def check(info: graphene.ResolveInfo) -> None:
        tenant = acting_tenant(info)
        if not has_role(info.context, tenant, minimum):
            raise AuthorizationError(f"This needs the {minimum} role in tenant '{tenant.slug}'.")

    check.__doc__ = f"{minimum} of the acting tenant"
    return check


ACTING_MEMBER = acting_role(Role.VIEWER)
ACTING_ADMIN = acting_role(Role.ADMIN)


def plain_id(value: Any) -> Any:
    """A Relay global id as the bare UUID the services take (anything else unchanged, for them to judge)."""
    try:
        return str(node_pk(str(value or "").strip()))
    except NotFoundError:
        return value


def plain(value: Any) -> Any:
    """GraphQL input (input objects, lists) as the plain dicts and lists the services validate; only the fields
    the caller gave are kept (an explicit null stays: it clears)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value
