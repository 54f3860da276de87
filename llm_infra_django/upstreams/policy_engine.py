"""Policy Engine client: allow or deny a consumption or publishing request, with the violations found.

Contract — `POST {URL}/v1/evaluate`, request:

    {"kind": "consumption" | "publishing", "tenant": "acme" | null,
     "resource": {...},      # what is published or consumed: service/model attributes (compliance, endpoint, ...)
     "context": {...}}       # the request around it: caller, key scopes, region, ...

answer `200`:

    {"decision": "allow" | "deny",
     "violations": [{"rule": "residency.sanctioned", "message": "...", "severity": "low|medium|high|critical",
                     "field": "compliance.data_residency" | null}],
     "policy_version": "2026-11-01" | null}

`violations` may accompany "allow" (advisory findings). Any other status, a non-JSON body or another shape is a
failure. Failing open gives `allowed=True` with `degraded=True`; failing closed (the default) raises; not configured
gives `allowed=True` with `evaluated=False`, and the caller applies its built-in rules.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal

import httpx

from llm_infra_django.errors import PolicyViolationError
from llm_infra_django.upstreams.base import (
    SEVERITIES,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResult,
    json_object,
    object_list,
    optional_text,
    required_text,
)

__all__ = ["PolicyDecision", "PolicyEngineClient", "PolicyViolation", "get_policy_engine_client"]

Kind = Literal["consumption", "publishing"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyViolation:
    """One broken rule; `field` is the path of the offending attribute, when the engine names one."""

    rule: str
    message: str
    severity: str
    field: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, kw_only=True)
class PolicyDecision(UpstreamResult):
    """The engine's decision."""

    allowed: bool
    violations: tuple[PolicyViolation, ...] = ()
    policy_version: str | None = None

    def raise_for_violations(self) -> None:
        """Raise `PolicyViolationError` (403, violations in the details) when the request was denied."""
        if not self.allowed:
            raise PolicyViolationError(violations=[violation.as_dict() for violation in self.violations])


class PolicyEngineClient(UpstreamClient):
    """Client of the Policy Engine (`LLM_INFRA["UPSTREAMS"]["policy_engine"]`)."""

    upstream = "policy_engine"

    def evaluate(
        self,
        kind: Kind,
        *,
        resource: Mapping[str, Any],
        tenant: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> PolicyDecision:
        """Ask whether `tenant` may consume or publish `resource`."""
        return self._call(self._evaluate_request(kind, resource, tenant, context))

    async def aevaluate(
        self,
        kind: Kind,
        *,
        resource: Mapping[str, Any],
        tenant: str | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> PolicyDecision:
        """The asyncio twin of `evaluate`."""
        return await self._acall(self._evaluate_request(kind, resource, tenant, context))

    def _evaluate_request(
        self, kind: Kind, resource: Mapping[str, Any], tenant: str | None, context: Mapping[str, Any] | None
    ) -> UpstreamRequest[PolicyDecision]:
        return UpstreamRequest(
            operation=f"evaluate_{kind}",
            method="POST",
            path="/v1/evaluate",
            json={"kind": kind, "tenant": tenant, "resource": dict(resource), "context": dict(context or {})},
            parse=self._parse,
            fail_open=lambda error: PolicyDecision(allowed=True, evaluated=False, degraded=True, error=error),
            not_configured=lambda: PolicyDecision(allowed=True, evaluated=False),
        )

    def _parse(self, response: httpx.Response) -> PolicyDecision:
        service = self.upstream
        body = json_object(response, service)
        decision = required_text(body, "decision", service, choices=("allow", "deny"))
        violations = tuple(
            PolicyViolation(
                rule=required_text(item, "rule", service, where=f"violations[{index}]."),
                message=optional_text(item, "message", service, where=f"violations[{index}].") or "",
                severity=required_text(item, "severity", service, choices=SEVERITIES, where=f"violations[{index}]."),
                field=optional_text(item, "field", service, where=f"violations[{index}]."),
            )
            for index, item in enumerate(object_list(body, "violations", service))
        )
        return PolicyDecision(
            allowed=decision == "allow",
            violations=violations,
            policy_version=optional_text(body, "policy_version", service),
        )


@functools.cache
def get_policy_engine_client() -> PolicyEngineClient:
    """The process's Policy Engine client (settings are read at each call)."""
    return PolicyEngineClient()
