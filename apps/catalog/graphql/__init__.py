"""GraphQL module of the catalog app (composed into the root schema by marketplace.schema): models, versions,
evaluations, lineage, leaderboard, datasets and training runs, scoped exactly as the REST API."""

from apps.catalog.graphql.mutations import Mutations
from apps.catalog.graphql.queries import Queries

__all__ = ["Mutations", "Queries"]
