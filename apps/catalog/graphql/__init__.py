"""GraphQL module of the catalog app (composed into the root schema by marketplace.schema)."""
