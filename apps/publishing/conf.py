"""Options of the publishing app (`MARKETPLACE_PUBLISHING`), read at call time."""

from llm_infra_django.conf import AppSettings

publishing_settings = AppSettings(
    "MARKETPLACE_PUBLISHING",
    defaults={
        # Production turns these on: endpoints must be https and must not point at private networks (SSRF guard).
        "REQUIRE_HTTPS": False,
        "ALLOW_PRIVATE_ENDPOINTS": True,
        # OpenAPI warnings become errors.
        "OPENAPI_STRICT": False,
        # Bounds of the OpenAPI check: nesting depth, and nodes read by the validator (references to references can
        # make its walk exponential in the document's size).
        "OPENAPI_MAX_DEPTH": 64,
        "OPENAPI_MAX_STEPS": 50_000,
        # Days between deprecation and automatic retirement.
        "DEPRECATION_GRACE_DAYS": 30,
        # Largest accepted service definition (JSON bytes, OpenAPI document included).
        "MAX_SERVICE_BYTES": 512 * 1024,
        "PROBE_TIMEOUT_MS": 3000,
        # Seconds a resolved model route stays cached (invalidated on every status change anyway).
        "ROUTE_CACHE_SECONDS": 300,
        # Keys for upstream credentials at rest (Fernet); empty = derived from SECRET_KEY. First key encrypts.
        "CREDENTIAL_KEYS": [],
    },
)
