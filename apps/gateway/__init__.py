"""The /graphql endpoint: schema composition, auth, limits and error formatting."""
