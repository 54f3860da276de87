"""Options of the tenancy app (`MARKETPLACE_TENANCY`), read at call time."""

from llm_infra_django.conf import AppSettings

tenancy_settings = AppSettings(
    "MARKETPLACE_TENANCY",
    defaults={
        # Days a new tenant stays in trial (0 = start active).
        "TRIAL_DAYS": 14,
        "DEFAULT_TIER": "free",
        # Share of a limit at which the soft-limit warning event fires.
        "SOFT_LIMIT_RATIO": 0.8,
        # Rate a THROTTLE quota allows once its limit is passed (token bucket per tenant and quota).
        "THROTTLE_RATE": "1/s",
        # Seconds tier limits and overrides stay in the cache (they are invalidated on every change anyway).
        "LIMITS_CACHE_SECONDS": 300,
        # Admin sign-in attempts allowed per username from one client address (brute-force guard; None = off). Never
        # per username alone: failing as someone from elsewhere must not lock them out.
        "ADMIN_LOGIN_RATE": "10/min",
        # Admin sign-in attempts allowed per client address, whatever the usernames (None = off).
        "ADMIN_LOGIN_CLIENT_RATE": "30/min",
        "RESERVED_SLUGS": [
            "admin",
            "api",
            "app",
            "graphql",
            "healthz",
            "readyz",
            "metrics",
            "static",
            "media",
            "v1",
            "www",
            "marketplace",
            "platform",
            "system",
            "root",
            "support",
        ],
    },
)
