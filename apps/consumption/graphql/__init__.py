"""GraphQL module of the consumption app (composed into the root schema by marketplace.schema)."""

from apps.consumption.graphql.mutations import Mutations
from apps.consumption.graphql.queries import Queries

__all__ = ["Mutations", "Queries"]
