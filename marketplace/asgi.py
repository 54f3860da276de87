"""ASGI entry point (uvicorn serves this): the proxy's `/v1/` paths on a lean, fully async handler; the rest on
Django's handler with the project's middleware."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from llm_infra_django.tracing import configure_tracing

configure_tracing()

from django.conf import settings  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402

from llm_infra_django.asgi import LeanASGIHandler, route_by_prefix  # noqa: E402

django_application = get_asgi_application()
proxy_application = LeanASGIHandler(settings.PROXY_MIDDLEWARE)
application = route_by_prefix([("/v1/", proxy_application)], django_application)
