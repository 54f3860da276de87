"""Root GraphQL schema, composed from each app's own `graphql` module (`Queries`, `Mutations`)."""

from importlib import import_module

import graphene

from apps.gateway import links

APPS_WITH_GRAPHQL = ("apps.tenancy", "apps.publishing", "apps.catalog", "apps.consumption")


def _parts(name: str) -> list[type]:
    parts = []
    for app in APPS_WITH_GRAPHQL:
        part = getattr(import_module(f"{app}.graphql"), name, None)
        if part is not None:
            parts.append(part)
    return parts


links.install()


class Query(*_parts("Queries"), graphene.ObjectType):  # type: ignore[misc]
    """Everything readable through /graphql."""

    api_version = graphene.String(required=True, description="Version of the marketplace API.")

    @staticmethod
    def resolve_api_version(root: object, info: graphene.ResolveInfo) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("llm-marketplace")
        except PackageNotFoundError:
            return "0.1.0"


class Mutation(*_parts("Mutations"), graphene.ObjectType):  # type: ignore[misc]
    """Every write, each calling the same service as the REST API."""


schema = graphene.Schema(query=Query, mutation=Mutation)
