"""Client of an external evaluation service (`MARKETPLACE_CATALOG["EVALUATOR_URL"]`); unconfigured = not used.

Contract — `POST {EVALUATOR_URL}/v1/evaluations` with

    {"evaluation_id": "…", "model": "acme--support-llama", "version": "1.2.0", "benchmark": "mmlu",
     "benchmark_name": "mmlu", "benchmark_version": "5-shot", "artifacts": [{uri, format, size_bytes, sha256}],
     "served_by": ["acme/support-chat@1.0.0"]}

answered `200` with `{"status": "completed", "score": <0-100>, "scores": {"<metric>": <number>, …}}` or
`{"status": "failed", "error": "<why>"}`. Connection errors, timeouts, 408, 429 and 5xx are retried
(`EVALUATOR_MAX_ATTEMPTS`); any other answer, or one off this contract, is a failure whose reason is recorded on
the evaluation. A score is only ever what the evaluator sent: nothing is invented when it fails.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from apps.catalog.conf import catalog_settings
from llm_infra_django.logging import log_external_call
from llm_infra_django.resilience.classify import is_retryable_status
from llm_infra_django.resilience.retry import RetryPolicy, retry_call
from llm_infra_django.tracing import inject_trace_headers

SERVICE = "evaluator"


@dataclass(frozen=True)
class EvaluatorOutcome:
    """`completed` with a score (and raw metrics), or not, with the reason."""

    completed: bool
    score: float | None = None
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""


def is_configured() -> bool:
    return bool(catalog_settings.EVALUATOR_URL)


class _Retryable(Exception):
    """A status worth another attempt (408, 429, 5xx)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status


def _retry_on(exc: BaseException) -> bool:
    return isinstance(exc, (_Retryable, httpx.TransportError))


def _parse(response: httpx.Response) -> EvaluatorOutcome:
    if response.status_code != 200:
        return EvaluatorOutcome(False, error=f"The evaluator answered HTTP {response.status_code}.")
    try:
        body = response.json()
    except ValueError:
        return EvaluatorOutcome(False, error="The evaluator's answer is not JSON.")
    if not isinstance(body, dict) or body.get("status") not in ("completed", "failed"):
        return EvaluatorOutcome(False, error="The evaluator's answer has no status 'completed' or 'failed'.")
    if body["status"] == "failed":
        reason = body.get("error")
        return EvaluatorOutcome(False, error=f"The evaluator failed: {reason}" if reason else "The evaluator failed.")
    score = body.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        return EvaluatorOutcome(False, error="The evaluator's answer has no numeric score.")
    if not 0 <= score <= 100:
        return EvaluatorOutcome(False, error=f"The evaluator's score {score} is outside 0-100.")
    raw = body.get("scores") or {}
    if not isinstance(raw, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in raw.values()
    ):
        return EvaluatorOutcome(False, error="The evaluator's scores are not a map of numbers.")
    return EvaluatorOutcome(True, score=float(score), scores={str(k): float(v) for k, v in raw.items()})


def evaluate(payload: dict[str, Any]) -> EvaluatorOutcome:
    """Ask the evaluator to run one benchmark (blocking; call it outside any transaction)."""
    url = str(catalog_settings.EVALUATOR_URL or "").rstrip("/")
    if not url:
        return EvaluatorOutcome(False, error="No evaluator is configured (MARKETPLACE_CATALOG['EVALUATOR_URL']).")
    headers = {"Accept": "application/json", "User-Agent": "llm-marketplace-catalog"}
    if catalog_settings.EVALUATOR_API_KEY:
        headers["Authorization"] = f"Bearer {catalog_settings.EVALUATOR_API_KEY}"
    timeout = httpx.Timeout(float(catalog_settings.EVALUATOR_TIMEOUT_MS) / 1000)
    policy = RetryPolicy.from_settings(max_attempts=max(1, int(catalog_settings.EVALUATOR_MAX_ATTEMPTS)))

    def attempt() -> httpx.Response:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.post(f"{url}/v1/evaluations", json=payload, headers=inject_trace_headers(dict(headers)))
        if is_retryable_status(response.status_code):
            raise _Retryable(response.status_code)
        return response

    started = time.monotonic()
    try:
        response = retry_call(attempt, policy=policy, service=SERVICE, operation="evaluate", retry_on=_retry_on)
    except _Retryable as exc:
        outcome = EvaluatorOutcome(False, error=f"The evaluator answered HTTP {exc.status}.")
    except httpx.TimeoutException:
        outcome = EvaluatorOutcome(False, error="The evaluator did not answer in time.")
    except httpx.TransportError as exc:
        outcome = EvaluatorOutcome(False, error=f"The evaluator is unreachable ({type(exc).__name__}).")
    else:
        outcome = _parse(response)
    log_external_call(
        service=SERVICE,
        operation="evaluate",
        duration_ms=(time.monotonic() - started) * 1000,
        outcome="success" if outcome.completed else "failure",
        error=outcome.error or None,
    )
    return outcome
