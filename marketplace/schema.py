"""Root GraphQL schema. Each app's `graphql` module will be composed here by the gateway."""

import graphene


class Query(graphene.ObjectType):
    """Placeholder root until the gateway composes the apps' queries."""

    api_version = graphene.String(required=True, description="Version of the marketplace API.")

    @staticmethod
    def resolve_api_version(root: object, info: graphene.ResolveInfo) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("llm-marketplace")
        except PackageNotFoundError:
            return "0.1.0"


schema = graphene.Schema(query=Query)
