"""Fields joining the types of two sibling apps, which may not import each other: the gateway, above both, adds
them before the root schema is built (`install()`, called by `marketplace.schema`)."""

from __future__ import annotations

from typing import Any

import graphene

from llm_infra_django.graphql import extend_type

_installed = False


def install() -> None:
    """Add the cross-app fields (once)."""
    global _installed
    if _installed:
        return
    from apps.catalog.graphql import loaders
    from apps.catalog.graphql.types import CatalogModelNode, ModelVersionNode
    from apps.consumption.graphql.types import CatalogModelOffer, offers_of
    from apps.publishing.graphql.types import ServiceVersionNode

    def resolve_model(root: Any, info: graphene.ResolveInfo) -> Any:
        return loaders.model_version_for_service_version(info, root)

    extend_type(
        ServiceVersionNode,
        model=graphene.Field(
            ModelVersionNode,
            resolver=resolve_model,
            description="The catalog model version this service version serves, if you may see its model.",
        ),
    )

    def resolve_offers(root: Any, info: graphene.ResolveInfo) -> Any:
        return offers_of(info, root)

    extend_type(
        CatalogModelNode,
        offers=graphene.Field(
            graphene.NonNull(graphene.List(graphene.NonNull(CatalogModelOffer))),
            resolver=resolve_offers,
            description="Every provider's offer of the model (greatest model version first) with prices and live "
            "health; offers that cannot be called are shown to the model's owner and their provider only.",
        ),
    )
    _installed = True
