"""ASGI entry point (uvicorn serves this)."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from llm_infra_django.tracing import configure_tracing

configure_tracing()

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
