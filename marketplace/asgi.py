"""ASGI entry point (uvicorn serves this): the proxy's `/v1/` paths on its ASGI edge (no Django request or response
objects, apps/consumption/edge.py); the rest on Django's handler with the project's middleware."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from llm_infra_django.tracing import configure_tracing

configure_tracing()

from django.core.asgi import get_asgi_application  # noqa: E402

from llm_infra_django.asgi import route_by_prefix  # noqa: E402

django_application = get_asgi_application()

# After Django's set-up: the edge's modules load models.
from apps.consumption.edge import application as proxy_edge  # noqa: E402

proxy_application = proxy_edge()
application = route_by_prefix([("/v1/", proxy_application)], django_application)
