"""Production settings: refuse to start without the required environment, and pass `check --deploy`."""

import os

from django.core.exceptions import ImproperlyConfigured

REQUIRED_ENV = ("SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL")
_missing = [name for name in REQUIRED_ENV if not os.environ.get(name)]
if _missing:
    raise ImproperlyConfigured(
        "settings.prod needs these environment variables, which are missing or empty: " + ", ".join(_missing)
    )

from settings.base import *  # noqa: E402,F403
from settings.base import env  # noqa: E402

DEBUG = False
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=True) else None
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
MARKETPLACE_GATEWAY = {"INTROSPECTION": env.bool("GRAPHQL_INTROSPECTION", default=False)}
MARKETPLACE_PUBLISHING = {"REQUIRE_HTTPS": True, "ALLOW_PRIVATE_ENDPOINTS": False}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
