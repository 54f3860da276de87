"""Settings of the processes a fault test starts: the test settings, with what the cases need set shorter
(breaker reset, cache lifetimes, reconciliation grace and schedule), and throttles (the GraphQL one among them) whose
Redis failure behaviour comes from the environment (FAULTS_THROTTLE_FAIL_OPEN)."""

from settings.test import *  # noqa: F403
from settings.test import LLM_INFRA, env

LLM_INFRA = {
    **LLM_INFRA,
    "THROTTLE_FAIL_OPEN": env.bool("FAULTS_THROTTLE_FAIL_OPEN", default=True),
    "CIRCUIT_BREAKER": {"FAILURE_THRESHOLD": 3, "RESET_TIMEOUT_S": 2, "SUCCESS_THRESHOLD": 2, "HALF_OPEN_MAX_CALLS": 1},
}

MARKETPLACE_CONSUMPTION = {
    # Keys and routes leave a process's memory quickly, so that a database outage reaches the proxy's reads.
    "KEY_CACHE_SECONDS": 1,
    "ROUTE_CACHE_SECONDS": 1,
    "RESERVATION_GRACE_SECONDS": 1,
}

CELERY_BEAT_SCHEDULE = {
    "consumption-drain-ledger": {"task": "consumption.drain_ledger", "schedule": 2.0},
    "consumption-reconcile-reservations": {"task": "consumption.reconcile_reservations", "schedule": 2.0},
}
