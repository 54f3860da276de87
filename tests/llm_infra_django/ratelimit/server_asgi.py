"""ASGI entry point of the uvicorn test servers."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.llm_infra_django.ratelimit.server_settings")

application = get_asgi_application()
