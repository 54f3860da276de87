"""Resilience for calls to other services: retry with backoff and named, cross-process circuit breakers."""

from llm_infra_django.resilience.breaker import BreakerConfig, CircuitBreaker, State, breaker
from llm_infra_django.resilience.classify import is_breaker_failure, is_retryable
from llm_infra_django.resilience.retry import RetryPolicy, aretry_call, retry_call, retrying

__all__ = [
    "BreakerConfig",
    "CircuitBreaker",
    "RetryPolicy",
    "State",
    "aretry_call",
    "breaker",
    "is_breaker_failure",
    "is_retryable",
    "retry_call",
    "retrying",
]
