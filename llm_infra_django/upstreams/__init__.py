"""Clients of the ecosystem's upstream services: Registry, Shield and Policy Engine."""

from llm_infra_django.upstreams.base import InvalidResponseError, UpstreamClient, UpstreamResult
from llm_infra_django.upstreams.policy_engine import (
    PolicyDecision,
    PolicyEngineClient,
    PolicyViolation,
    get_policy_engine_client,
)
from llm_infra_django.upstreams.registry import RegistryClient, RegistryEntry, RegistryResult, get_registry_client
from llm_infra_django.upstreams.shield import ShieldClient, ShieldReason, ShieldVerdict, get_shield_client

__all__ = [
    "InvalidResponseError",
    "PolicyDecision",
    "PolicyEngineClient",
    "PolicyViolation",
    "RegistryClient",
    "RegistryEntry",
    "RegistryResult",
    "ShieldClient",
    "ShieldReason",
    "ShieldVerdict",
    "UpstreamClient",
    "UpstreamResult",
    "get_policy_engine_client",
    "get_registry_client",
    "get_shield_client",
]
