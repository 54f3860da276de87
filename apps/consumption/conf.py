"""Options of the consumption app (`MARKETPLACE_CONSUMPTION`), read at call time."""

from llm_infra_django.conf import AppSettings

consumption_settings = AppSettings(
    "MARKETPLACE_CONSUMPTION",
    defaults={
        # Secret for the HMAC of API keys at rest; empty = derived from SECRET_KEY (changing it invalidates keys).
        "KEY_HMAC_SECRET": "",
        "ROTATION_GRACE_HOURS": 24,
        # When a person leaves a tenant (removed, deactivated, deleted), the keys they created there are revoked; with
        # True, those holding the consume scope stay, reduced to it (their calls go on, their management rights end).
        "KEYS_OUTLIVE_MEMBERS": False,
        # Seconds an authenticated key / a resolved route stays in a worker's memory (revocation is immediate anyway).
        "KEY_CACHE_SECONDS": 10,
        "ROUTE_CACHE_SECONDS": 5,
        # Completion tokens reserved when a request names no max_tokens (capped by the model's context length).
        "DEFAULT_MAX_TOKENS": 1024,
        # Most completions (`n`) one request may ask for; `max_tokens` is bounded by the model's context length.
        "MAX_N": 128,
        # With Shield configured, scan answers too (streams are then read whole before their first byte is sent).
        "SHIELD_RESPONSES": True,
        # Largest request body the proxy reads.
        "MAX_BODY_BYTES": 1_048_576,
        # Seconds after a reservation's deadline before the reconciler settles it from the ledger.
        "RESERVATION_GRACE_SECONDS": 30,
        # Raw usage records older than this are pruned (rollups are kept).
        "RETENTION_DAYS": 90,
        # Ledger writer: flush when this many records wait, or after this many milliseconds.
        "LEDGER_BATCH_SIZE": 200,
        "LEDGER_FLUSH_MS": 2,
        # Retries of an upstream call that never reached it (connection refused, DNS).
        "CONNECT_RETRIES": 1,
        # Routing across a catalog model's offers: most upstream attempts one call makes (the first choice and its
        # fallbacks), the recent availability (%) under which an offer gets only fallback traffic, and how long a
        # worker trusts what it knows of an offer's health (refreshed in the background, never on the hot path).
        "ROUTING_MAX_ATTEMPTS": 5,
        "ROUTING_MIN_AVAILABILITY": 80.0,
        "ROUTING_HEALTH_SECONDS": 10,
        # Optional webhook receiving SLA alerts (POST JSON).
        "SLA_ALERT_WEBHOOK": None,
    },
)
