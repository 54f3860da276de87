"""Settings shared by every environment; the environment is read here, once."""

from pathlib import Path

import environ

from llm_infra_django.logging import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="dev-only-insecure-key-change-me-for-any-real-deployment-0123456789")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.tenancy.apps.MarketplaceAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # Before graphene_django: its templates/graphene/graphiql.html (GraphiQL from vendored files) replaces the CDN one.
    "apps.gateway",
    "graphene_django",
    "llm_infra_django",
    "apps.tenancy",
    "apps.publishing",
    "apps.catalog",
    "apps.consumption",
    "apps.billing",
]

MIDDLEWARE = [
    "llm_infra_django.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "marketplace.middleware.AsyncWhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "apps.tenancy.context.TenantContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "llm_infra_django.middleware.ErrorEnvelopeMiddleware",
]


ROOT_URLCONF = "marketplace.urls"
WSGI_APPLICATION = "marketplace.wsgi.application"
ASGI_APPLICATION = "marketplace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "marketplace" / "templates"],  # the project's root page
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: DATABASE_URL, or an SQLite file under the repository in WAL mode.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    )
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=0))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: the project's Redis backend when REDIS_URL is set, local memory otherwise.
REDIS_URL = env.str("REDIS_URL", default="")
CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="mkt")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "llm_infra_django.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CACHE_KEY_PREFIX,
            "OPTIONS": {
                "SOCKET_CONNECT_TIMEOUT": 1,
                "SOCKET_TIMEOUT": 1,
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": CACHE_KEY_PREFIX}}

# --- Celery: CELERY_BROKER_URL unset runs tasks eagerly in-process.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL or "") or None
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

REST_FRAMEWORK = {
    "EXCEPTION_HANDLER": "llm_infra_django.drf.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.consumption.authentication.APIKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # drf-spectacular's, documenting the error envelope for the errors every operation can answer.
    "DEFAULT_SCHEMA_CLASS": "llm_infra_django.drf.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    # Rates of LLM_INFRA["THROTTLE_RATES"]: `anon` per client IP, `user` per API key or signed-in user.
    "DEFAULT_THROTTLE_CLASSES": [
        "llm_infra_django.ratelimit.throttles.AnonRateThrottle",
        "llm_infra_django.ratelimit.throttles.UserRateThrottle",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "LLM Marketplace API",
    "DESCRIPTION": "Publish, discover and consume LLM services and models.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # drf-spectacular's enum hook, then the proxy's /v1/ endpoints (plain async views, described by hand).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.consumption.openapi.add_proxy_paths",
    ],
}

GRAPHENE = {"SCHEMA": "marketplace.schema.schema", "RELAY_CONNECTION_MAX_LIMIT": 100}

CELERY_BEAT_SCHEDULE = {
    "tenancy-expire-grants": {"task": "tenancy.expire_grants", "schedule": 300.0},
    "catalog-recover-evaluations": {"task": "catalog.recover_evaluations", "schedule": 300.0},
    "publishing-retire-due-versions": {"task": "publishing.retire_due_versions", "schedule": 3600.0},
    "consumption-check-sla": {"task": "consumption.check_sla", "schedule": 300.0},
    "consumption-drain-ledger": {"task": "consumption.drain_ledger", "schedule": 10.0},
    "consumption-reconcile-reservations": {"task": "consumption.reconcile_reservations", "schedule": 60.0},
    "consumption-prune-usage-records": {"task": "consumption.prune_usage_records", "schedule": 86_400.0},
}

# Model catalog: an external evaluator runs benchmarks when configured (unset: results are only submitted).
MARKETPLACE_CATALOG = {
    "EVALUATOR_URL": env.str("CATALOG_EVALUATOR_URL", default="") or None,
    "EVALUATOR_TIMEOUT_MS": env.int("CATALOG_EVALUATOR_TIMEOUT_MS", default=30_000),
    "EVALUATOR_API_KEY": env.str("CATALOG_EVALUATOR_API_KEY", default="") or None,
}

# Billing: Stripe top-ups are off unless the webhook's endpoint secret is set.
MARKETPLACE_BILLING = {
    "STRIPE_SECRET_KEY": env.str("STRIPE_SECRET_KEY", default="") or None,
    "STRIPE_WEBHOOK_SECRET": env.str("STRIPE_WEBHOOK_SECRET", default="") or None,
}

LLM_INFRA = {
    "CACHE_ALIAS": "default",
    "TENANT_RESOLVER": "apps.tenancy.context.tenant_for_logs",
    # The REST API (`anon`, `user`) and /graphql (`graphql_anon`, `graphql`): anonymous callers, limited per client IP
    # (behind `NUM_PROXIES` trusted proxies), get less than signed-in ones, limited per API key or user.
    "THROTTLE_RATES": {"anon": "60/min", "user": "600/min", "graphql_anon": "30/min", "graphql": "300/min"},
    "LOG_JSON": env.bool("LOG_JSON", default=None) if env.str("LOG_JSON", default="") else None,
    # /metrics for scrapers only (docs/deployment.md): the bearer token they send, the networks they scrape from.
    "METRICS_TOKEN": env.str("METRICS_TOKEN", default="") or None,
    "METRICS_ALLOWED_NETWORKS": env.list("METRICS_ALLOWED_NETWORKS", default=[]),
    "TRACING": {
        "ENABLED": env.bool("OTEL_ENABLED", default=True),
        "SERVICE_NAME": env.str("OTEL_SERVICE_NAME", default="llm-marketplace"),
        "SAMPLE_RATE": env.float("OTEL_SAMPLE_RATE", default=1.0),
        "EXPORTER": env.str("OTEL_EXPORTER", default="") or None,
        "OTLP_ENDPOINT": env.str("OTEL_EXPORTER_OTLP_ENDPOINT", default="") or None,
    },
    "UPSTREAMS": {
        "registry": {
            "URL": env.str("LLM_REGISTRY_URL", default="") or None,
            "TIMEOUT_MS": env.int("LLM_REGISTRY_TIMEOUT_MS", default=500),
        },
        "shield": {
            "URL": env.str("LLM_SHIELD_URL", default="") or None,
            "TIMEOUT_MS": env.int("LLM_SHIELD_TIMEOUT_MS", default=200),
        },
        "policy_engine": {
            "URL": env.str("POLICY_ENGINE_URL", default="") or None,
            "TIMEOUT_MS": env.int("POLICY_ENGINE_TIMEOUT_MS", default=300),
        },
    },
}

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = logging_config(level=LOG_LEVEL)

# Load the project's Celery app with the settings, so `shared_task`s bind to it (eager mode included) in every
# process that loads Django: web, tests and management commands alike.
import marketplace.celery  # noqa: E402,F401
