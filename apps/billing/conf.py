"""Options of the billing app (`MARKETPLACE_BILLING`), read at call time."""

from llm_infra_django.conf import AppSettings

billing_settings = AppSettings(
    "MARKETPLACE_BILLING",
    defaults={
        # Stripe's API key (Checkout Sessions) and the webhook endpoint's signing secret (`whsec_…`): without the
        # latter the webhook endpoint answers 404 and credits come only from grants.
        "STRIPE_SECRET_KEY": None,
        "STRIPE_WEBHOOK_SECRET": None,
        # Seconds a webhook's signed timestamp may be old (Stripe's own default tolerance).
        "STRIPE_TOLERANCE_SECONDS": 300,
        # The currency credits are kept in; a payment in another currency is recorded and refused.
        "CURRENCY": "usd",
    },
)
