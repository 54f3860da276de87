"""Mutations of the consumption app: API key create, rotate and revoke — the REST views' serializers validate the
input and the same services act (so revocation takes effect at once on every worker). A secret appears only in the
create and rotate payloads."""

from __future__ import annotations

import uuid
from typing import Any

import graphene

from apps.catalog import selectors as catalog_selectors
from apps.catalog.services.offers import unlink_offer
from apps.consumption import offers, selectors, services
from apps.consumption.api.serializers import ApiKeyCreateSerializer, ApiKeyRotateSerializer, OfferCreateSerializer
from apps.consumption.graphql.types import MANAGE_KEYS, ApiKeyNode, CatalogModelOffer
from apps.consumption.models import ApiKey, Scope
from apps.tenancy.context import require_tenant
from llm_infra_django.drf.validation import validated
from llm_infra_django.errors import NotFoundError
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql import FieldError, key_scope, mutation, node_pk, requires

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
        routing = graphene.JSONString(
            description="Routing preferences of the key's calls (a request's `provider` fields, as JSON): they narrow "
            "the tenant's; a request narrows them further."
        )

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


class OfferModel(graphene.Mutation):
    """Provider admins (or a key with `publish`): offer one of your tenant's service versions for a catalog model,
    as `POST /api/v1/models/<slug>/offers/` (idempotent)."""

    class Arguments:
        model = graphene.String(required=True, description="The model's handle: `<owner-slug>--<model-slug>`.")
        service_version = graphene.ID(required=True, description="A version of one of your services (UUID).")
        model_version = graphene.String(description="The model's version it serves; default: its latest ready one.")

    offer = graphene.Field(CatalogModelOffer)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    @requires(key_scope(Scope.PUBLISH))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, model: str, **values: Any) -> OfferModel:
        found = catalog_selectors.get_model(catalog_selectors.viewer_of_request(info.context), model)
        data = validated(OfferCreateSerializer, {k: v for k, v in values.items() if v is not None})
        link = offers.offer_service_version(
            model=found,
            provider=require_tenant(info.context),
            actor=info.context.user,
            service_version_id=data["service_version"],
            version=data.get("model_version"),
        )
        return cls(offer=offers.get_offer(link), errors=[])


class UnlinkOffer(graphene.Mutation):
    """Admins of the model's owner or of the offer's provider: remove an offer, as
    `DELETE /api/v1/models/<slug>/offers/<link_id>/`."""

    class Arguments:
        model = graphene.String(required=True, description="The model's handle: `<owner-slug>--<model-slug>`.")
        link_id = graphene.ID(required=True, description="The offer's `linkId`.")

    ok = graphene.Boolean(required=True)
    errors = graphene.List(graphene.NonNull(FieldError), required=True)

    @classmethod
    @mutation()
    @requires(key_scope(Scope.PUBLISH))
    def mutate(cls, root: Any, info: graphene.ResolveInfo, model: str, link_id: str) -> UnlinkOffer:
        found = catalog_selectors.get_model(catalog_selectors.viewer_of_request(info.context), model)
        try:
            link_pk = uuid.UUID(str(link_id))
        except ValueError:
            raise NotFoundError("Offer", str(link_id)) from None
        unlink_offer(link=catalog_selectors.get_offer_link(found, link_pk), actor=info.context.user)
        return cls(ok=True, errors=[])


class Mutations(graphene.ObjectType):
    api_key_create = ApiKeyCreate.Field()
    api_key_rotate = ApiKeyRotate.Field()
    api_key_revoke = ApiKeyRevoke.Field()
    offer_model = OfferModel.Field()
    unlink_offer = UnlinkOffer.Field()
