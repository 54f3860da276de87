"""WSGI entry point."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

from llm_infra_django.tracing import configure_tracing

configure_tracing()

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
