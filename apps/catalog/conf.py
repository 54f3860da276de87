"""Options of the catalog app (`MARKETPLACE_CATALOG`), read at call time."""

from llm_infra_django.conf import AppSettings

catalog_settings = AppSettings(
    "MARKETPLACE_CATALOG",
    defaults={
        # Base URL of an external evaluation service (None = not used: results are only submitted through the API).
        "EVALUATOR_URL": None,
        # Timeout of one evaluator call (each httpx phase), and how often a failing call is tried.
        "EVALUATOR_TIMEOUT_MS": 30_000,
        "EVALUATOR_MAX_ATTEMPTS": 3,
        # Sent as `Authorization: Bearer …` when set.
        "EVALUATOR_API_KEY": None,
        # The periodic recovery (`catalog.recover_evaluations`): pending evaluations older than this are queued
        # again (a lost message), running ones older than the timeout fail (a killed worker).
        "EVALUATION_REQUEUE_AFTER_S": 600,
        "EVALUATION_TIMEOUT_S": 3600,
        # Lineage walks: depth when the caller gives none, and the largest depth accepted.
        "LINEAGE_DEFAULT_DEPTH": 5,
        "LINEAGE_MAX_DEPTH": 50,
        # The latency at (or above) which the performance part of the quality score is 0.
        "LATENCY_BUDGET_MS": 5000,
    },
)
