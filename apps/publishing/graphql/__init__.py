"""GraphQL module of the publishing app (composed into the root schema by the gateway)."""

from apps.publishing.graphql.queries import Queries

__all__ = ["Queries"]
