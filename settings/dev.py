"""Development settings for `make run`: SQLite, local memory cache and eager tasks unless the env says otherwise."""

from settings.base import *  # noqa: F403
from settings.base import env

DEBUG = env.bool("DEBUG", default=True)
# Serve static files straight from the apps (no collectstatic needed in development).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# GraphiQL at /graphql for browsers, served from the vendored files (never in production).
MARKETPLACE_GATEWAY = {"GRAPHIQL": True}
