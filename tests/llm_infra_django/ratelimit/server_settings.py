"""Settings of the uvicorn servers the HTTP test starts: the infra test settings plus Redis, a rate and the
rate-limit middleware (REDIS_URL, RATELIMIT_TEST_SCOPE and RATELIMIT_TEST_RATE come from the environment)."""

import os

from tests.llm_infra_django.settings import *  # noqa: F403 - the same project, served for real

ROOT_URLCONF = "tests.llm_infra_django.ratelimit.server_urls"
MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "llm_infra_django.ratelimit.middleware.RateLimitMiddleware",
    "llm_infra_django.middleware.ErrorEnvelopeMiddleware",
]
LLM_INFRA = {
    "TRACING": {"ENABLED": False},
    "REDIS_URL": os.environ["REDIS_URL"],
    "THROTTLE_RATES": {os.environ["RATELIMIT_TEST_SCOPE"]: os.environ["RATELIMIT_TEST_RATE"]},
}
