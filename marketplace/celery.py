"""The Celery application, configured from Django's `CELERY_*` settings."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = Celery("marketplace")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["marketplace", "apps.tenancy", "apps.publishing", "apps.catalog", "apps.consumption"])


@signals.setup_logging.connect(dispatch_uid="marketplace.celery.setup_logging")
def _use_django_logging(**kwargs: object) -> None:
    """Keep Celery from replacing the logging Django configured (structlog processors included)."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)


@signals.worker_process_init.connect(dispatch_uid="marketplace.celery.tracing")
@signals.worker_init.connect(dispatch_uid="marketplace.celery.tracing_main")
def _configure_tracing(**kwargs: object) -> None:
    from llm_infra_django.tracing import configure_tracing

    configure_tracing()
