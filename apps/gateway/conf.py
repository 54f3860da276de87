"""Options of the GraphQL gateway (`MARKETPLACE_GATEWAY`), read at call time."""

from llm_infra_django.conf import AppSettings

gateway_settings = AppSettings(
    "MARKETPLACE_GATEWAY",
    defaults={
        "MAX_DEPTH": 10,
        "MAX_COST": 1000,
        "MAX_QUERY_BYTES": 20_000,
        # Fields, fragment spreads and inline fragments written in a document: graphql-core's validation compares
        # them pairwise (500 take 0.3 s of CPU, 1 000 over a second); GraphiQL's introspection query has 75.
        "MAX_SELECTIONS": 300,
        "INTROSPECTION": True,
        # Scopes of `LLM_INFRA["THROTTLE_RATES"]` limiting GraphQL requests: signed-in callers per API key or user,
        # anonymous ones per client IP (a scope without a rate: no limit).
        "THROTTLE_SCOPE": "graphql",
        "ANON_THROTTLE_SCOPE": "graphql_anon",
        # GraphiQL for browser GETs of /graphql, from the files vendored in gateway/static (development only).
        "GRAPHIQL": False,
    },
)
