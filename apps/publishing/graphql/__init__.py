"""GraphQL module of the publishing app (composed into the root schema by marketplace.schema)."""

from apps.publishing.graphql.mutations import Mutations
from apps.publishing.graphql.queries import Queries

__all__ = ["Mutations", "Queries"]
