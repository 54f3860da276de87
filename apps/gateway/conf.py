"""Options of the GraphQL gateway (`MARKETPLACE_GATEWAY`), read at call time."""

from llm_infra_django.conf import AppSettings

gateway_settings = AppSettings(
    "MARKETPLACE_GATEWAY",
    defaults={
        "MAX_DEPTH": 10,
        "MAX_COST": 1000,
        "MAX_QUERY_BYTES": 20_000,
        "INTROSPECTION": True,
        # Scope of `LLM_INFRA["THROTTLE_RATES"]` limiting GraphQL requests per caller (unset scope: no limit).
        "THROTTLE_SCOPE": "graphql",
        # GraphiQL for browser GETs of /graphql, from the files vendored in gateway/static (development only).
        "GRAPHIQL": False,
    },
)
