"""Mutations of the consumption app: API key create, rotate and revoke — the REST views' serializers validate the
input and the same services act (so revocation takes effect at once on every worker). A secret appears only in the
create and rotate payloads."""

from __future__ import annotations

from typing import Any

import graphene

from apps.consumption import selectors, services
from apps.consumption.api.serializers import ApiKeyCreateSerializer, ApiKeyRotateSerializer
from apps.consumption.graphql.types import MANAGE_KEYS, ApiKeyNode
from apps.consumption.models import ApiKey
from apps.tenancy.context import require_tenant
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import NotFoundError
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql import FieldError, mutation, node_pk, requires

SECRET_DESCRIPTION = "The API key itself. Shown in this payload only: store it now, it cannot be retrieved again."


def _key(info: graphene.ResolveInfo, key_id: str) -> ApiKey:
    """A key of the caller's tenant; any other id (another tenant's key included) is not found."""
    tenant = require_tenant(info.context)
    key = selectors.list_api_keys(tenant).filter(pk=node_pk(key_id, "ApiKeyNode", "API key")).first()
    if key is None:
        raise NotFoundError("API key", str(key_id))
    return key


class ApiKeyCreate(graphene.Mutation):
    """Tenant admins: a new key, with its secret (this payload only). Counts against the `api_keys` quota."""

    class Arguments:
        name = graphene.String(required=True)
        scopes = graphene.List(
            graphene.NonNull(graphene.String), description="`consume`, `read`, `publish`, `admin`; default consume."
        )
        allowed_models = graphene.List(
            graphene.NonNull(graphene.String), description="Model ids (`publisher/service`); empty = every model."
        )
        expires_at = graphene.DateTime()
        rpm_limit = graphene.Int()
        tpm_limit = graphene.Int()
        max_parallel = graphene.Int()
        budget_day_usd = GqlDecimal(description="USD per UTC day; > 0.")
        budget_month_usd = GqlDecimal(description="USD per UTC month; > 0.")

    api_key = graphene.Field(ApiKeyNode)
    secret = graphene.String(description=SECRET_DESCRIPTION)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    @requires(*MANAGE_KEYS)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, **values: Any) -> ApiKeyCreate:
        data = validated(ApiKeyCreateSerializer, values, {"request": info.context})
        tenant = require_tenant(info.context)
        key, secret = services.create_api_key(tenant=tenant, actor=info.context.user, **data)
        return cls(api_key=key, secret=secret, errors=[])


class ApiKeyRotate(graphene.Mutation):
    """Tenant admins: a successor with the same settings and a new secret (this payload only); the old secret keeps
    working for `graceHours` (default 24), then expires."""

    class Arguments:
        id = graphene.ID(required=True, description="Relay id or UUID of the key to rotate.")
        grace_hours = graphene.Float(description="Hours the old secret keeps working (default 24, at most 720).")

    api_key = graphene.Field(ApiKeyNode, description="The new key.")
    secret = graphene.String(description=SECRET_DESCRIPTION)
    previous_key = graphene.Field(ApiKeyNode, description="The old key, with the end of its grace period.")
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    @requires(*MANAGE_KEYS)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str, **values: Any) -> ApiKeyRotate:
        key = _key(info, id)
        data = validated(ApiKeyRotateSerializer, values, {"request": info.context})
        new, secret = services.rotate_api_key(key=key, actor=info.context.user, grace_hours=data.get("grace_hours"))
        return cls(api_key=new, secret=secret, previous_key=_key(info, str(key.pk)), errors=[])


class ApiKeyRevoke(graphene.Mutation):
    """Tenant admins: revoke a key; every worker refuses it from its next request."""

    class Arguments:
        id = graphene.ID(required=True, description="Relay id or UUID of the key to revoke.")

    api_key = graphene.Field(ApiKeyNode)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    @requires(*MANAGE_KEYS)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str) -> ApiKeyRevoke:
        key = services.revoke_api_key(key=_key(info, id), actor=info.context.user)
        return cls(api_key=key, errors=[])


class Mutations(graphene.ObjectType):
    api_key_create = ApiKeyCreate.Field()
    api_key_rotate = ApiKeyRotate.Field()
    api_key_revoke = ApiKeyRevoke.Field()
