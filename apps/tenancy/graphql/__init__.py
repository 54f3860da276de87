"""GraphQL module of the tenancy app (composed into the root schema by the gateway)."""

from apps.tenancy.graphql.mutations import Mutations
from apps.tenancy.graphql.queries import Queries

__all__ = ["Mutations", "Queries"]
