"""Shield client: safety scan of a prompt or a response, answered allow | warn | redact | block.

Contract — `POST {URL}/v1/scan`, request:

    {"direction": "prompt" | "response", "text": "...", "tenant": "acme" | null, "model": "acme/chat" | null,
     "metadata": {...}}

answer `200`:

    {"decision": "allow" | "warn" | "redact" | "block",
     "redacted_text": "..." | null,           # required (a string, possibly empty) when decision is "redact"
     "reasons": [{"code": "pii.email", "message": "...", "severity": "low|medium|high|critical" | null}],
     "scan_id": "..." | null}

Any other status, a non-JSON body or another shape is a failure. Failing open (the default) gives
`decision="allow"` with `degraded=True`; not configured gives `decision="allow"` with `evaluated=False`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal, cast

import httpx

from llm_infra_django.upstreams.base import (
    SEVERITIES,
    UpstreamClient,
    UpstreamRequest,
    UpstreamResult,
    invalid,
    json_object,
    object_list,
    optional_text,
    required_text,
)

__all__ = ["DECISIONS", "ShieldClient", "ShieldReason", "ShieldVerdict", "get_shield_client"]

Decision = Literal["allow", "warn", "redact", "block"]
Direction = Literal["prompt", "response"]
DECISIONS: frozenset[str] = frozenset({"allow", "warn", "redact", "block"})


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShieldReason:
    """Why Shield decided as it did."""

    code: str
    message: str = ""
    severity: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class ShieldVerdict(UpstreamResult):
    """A scan result. `text` is what to forward: the redacted text on "redact", the original otherwise."""

    decision: Decision
    text: str
    redacted_text: str | None = None
    reasons: tuple[ShieldReason, ...] = ()
    scan_id: str | None = None

    @property
    def blocked(self) -> bool:
        return self.decision == "block"


class ShieldClient(UpstreamClient):
    """Client of the Shield service (`LLM_INFRA["UPSTREAMS"]["shield"]`)."""

    upstream = "shield"

    def scan(
        self,
        text: str,
        *,
        direction: Direction = "prompt",
        tenant: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ShieldVerdict:
        """Scan `text` (a prompt before it goes upstream, or a response before it goes back)."""
        return self._call(self._scan_request(text, direction, tenant, model, metadata))

    async def ascan(
        self,
        text: str,
        *,
        direction: Direction = "prompt",
        tenant: str | None = None,
        model: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ShieldVerdict:
        """The asyncio twin of `scan`."""
        return await self._acall(self._scan_request(text, direction, tenant, model, metadata))

    def _scan_request(
        self,
        text: str,
        direction: Direction,
        tenant: str | None,
        model: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> UpstreamRequest[ShieldVerdict]:
        return UpstreamRequest(
            operation=f"scan_{direction}",
            method="POST",
            path="/v1/scan",
            json={
                "direction": direction,
                "text": text,
                "tenant": tenant,
                "model": model,
                "metadata": dict(metadata or {}),
            },
            parse=lambda response: self._parse(response, text),
            fail_open=lambda error: ShieldVerdict(
                decision="allow", text=text, evaluated=False, degraded=True, error=error
            ),
            not_configured=lambda: ShieldVerdict(decision="allow", text=text, evaluated=False),
        )

    def _parse(self, response: httpx.Response, text: str) -> ShieldVerdict:
        service = self.upstream
        body = json_object(response, service)
        decision = cast(Decision, required_text(body, "decision", service, choices=DECISIONS))
        redacted = optional_text(body, "redacted_text", service)
        if decision == "redact" and redacted is None:
            invalid(service, "'redacted_text' is required when the decision is 'redact'")
        reasons = tuple(
            ShieldReason(
                code=required_text(item, "code", service, where=f"reasons[{index}]."),
                message=optional_text(item, "message", service, where=f"reasons[{index}].") or "",
                severity=optional_text(item, "severity", service, choices=SEVERITIES, where=f"reasons[{index}]."),
            )
            for index, item in enumerate(object_list(body, "reasons", service))
        )
        return ShieldVerdict(
            decision=decision,
            text=redacted if decision == "redact" and redacted is not None else text,
            redacted_text=redacted,
            reasons=reasons,
            scan_id=optional_text(body, "scan_id", service),
        )


@functools.cache
def get_shield_client() -> ShieldClient:
    """The process's Shield client (settings are read at each call, so one instance serves every configuration)."""
    return ShieldClient()
