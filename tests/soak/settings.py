"""Settings of the processes the soak starts: the test settings with the ledger drained and reservations reconciled
every 2 s by the worker's beat, and key/route caches short enough that rotations and new versions show quickly."""

from settings.test import *  # noqa: F403

MARKETPLACE_CONSUMPTION = {"KEY_CACHE_SECONDS": 2, "ROUTE_CACHE_SECONDS": 2}

CELERY_BEAT_SCHEDULE = {
    "consumption-drain-ledger": {"task": "consumption.drain_ledger", "schedule": 2.0},
    "consumption-reconcile-reservations": {"task": "consumption.reconcile_reservations", "schedule": 5.0},
}
