"""GraphQL module of the consumption app (composed into the root schema by marketplace.schema)."""
