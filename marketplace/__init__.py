"""The LLM Marketplace project package: URLs, ASGI/WSGI entry points, Celery app and GraphQL root."""

from marketplace.celery import app as celery_app

__all__ = ["celery_app"]
