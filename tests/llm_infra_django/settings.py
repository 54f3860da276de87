"""Minimal settings for testing `llm_infra_django` on its own, as any other Django project would use it."""

import os

from llm_infra_django.logging import logging_config

SECRET_KEY = "llm-infra-tests-only-not-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "tests.llm_infra_django.urls"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "llm_infra_django",
]
MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "llm_infra_django.middleware.ErrorEnvelopeMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": f"infra-{_worker}"}}
REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "llm_infra_django.drf.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "llm_infra_django.drf.schema.AutoSchema",
}
LLM_INFRA = {"TRACING": {"ENABLED": False}}
LOGGING = logging_config(level="INFO")
