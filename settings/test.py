"""Test settings: the environment decides the servers (CI sets DATABASE_URL, REDIS_URL, CELERY_BROKER_URL)."""

import os

from settings.base import *  # noqa: F403
from settings.base import CACHE_KEY_PREFIX, CACHES, LLM_INFRA, env

DEBUG = False
# Tasks run in-process during tests, also when a broker is configured; the test that checks a real worker switches
# eager mode off for itself.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# Each pytest-xdist worker gets its own key space on the shared Redis.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
CACHES["default"]["KEY_PREFIX"] = f"{CACHE_KEY_PREFIX}-test-{_worker}"

# A file-backed SQLite test database (when SQLite is used) so that server processes started by tests share it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # Named per process: two test sessions in one checkout must never share (and corrupt) a database file.
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": str(BASE_DIR / "var" / f"test-{_worker}-{os.getpid()}.sqlite3")  # noqa: F405
    }
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405

# The suite makes many requests from 127.0.0.1 as a few users, on a shared Redis: the throttle rates of settings.base
# are raised here (tests/marketplace/test_throttling.py puts them back and proves each one on).
LLM_INFRA = {**LLM_INFRA, "THROTTLE_RATES": dict.fromkeys(LLM_INFRA["THROTTLE_RATES"], "100000/min")}

# Many tests sign in to the admin from 127.0.0.1 at once (and share Redis): the brute-force guard is tested on its
# own with a strict rate.
MARKETPLACE_TENANCY = {"ADMIN_LOGIN_RATE": "10000/min", "ADMIN_LOGIN_CLIENT_RATE": "10000/min"}
