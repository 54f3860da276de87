"""GraphQL module of the tenancy app (composed into the root schema by the gateway)."""

from apps.tenancy.graphql.mutations import TenantMutations
from apps.tenancy.graphql.queries import Queries
from apps.tenancy.graphql.sharing_mutations import SharingMutations


class Mutations(TenantMutations, SharingMutations):
    """Every tenancy write of the REST API."""


__all__ = ["Mutations", "Queries"]
