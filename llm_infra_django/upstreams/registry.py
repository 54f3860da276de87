"""Registry client: register, update, deregister and look up services and models in the ecosystem registry.

Contract — entries live at `{URL}/v1/services/{id}` and `{URL}/v1/models/{id}` (`id` percent-encoded, e.g.
`acme%2Fsummarizer%401.2.0`). An entry:

    {"kind": "service" | "model", "id": "acme/summarizer@1.2.0", "name": "Summarizer", "version": "1.2.0",
     "status": "active", "owner": "acme", "metadata": {...}, "updated_at": "2026-11-26T10:00:00Z" | null}

- register: `PUT` with the entry (without `updated_at`) → `200`/`201` `{"entry": {...}}` (an idempotent upsert);
- update: `PATCH` with any of `name`, `version`, `status`, `metadata` → `200` `{"entry": {...}}`, `404` unknown;
- deregister: `DELETE` → `200`/`204` (body ignored), `404` already absent;
- lookup: `GET` → `200` `{"entry": {...}}`, `404` unknown.

The answered entry must have the requested kind and id. Any other status, a non-JSON body or another shape is a
failure. Failing open (the default) gives `found=False, entry=None` with `degraded=True` — callers that must not
proceed unsynchronised (publishing) check `degraded`; not configured gives the same with `evaluated=False`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any, Literal, cast
from urllib.parse import quote

import httpx

from llm_infra_django.upstreams.base import (
    UpstreamClient,
    UpstreamRequest,
    UpstreamResult,
    expect_status,
    invalid,
    json_object,
    object_field,
    optional_text,
    required_text,
)

__all__ = ["RegistryClient", "RegistryEntry", "RegistryResult", "get_registry_client"]

Kind = Literal["service", "model"]
KINDS = ("service", "model")


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegistryEntry:
    """A service or model as the registry knows it."""

    kind: Kind
    id: str
    name: str
    version: str
    status: str
    owner: str
    metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    updated_at: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class RegistryResult(UpstreamResult):
    """The outcome of a registry operation: `found` says whether the entry exists (after it), `entry` is its state."""

    found: bool = False
    entry: RegistryEntry | None = None


class RegistryClient(UpstreamClient):
    """Client of the Registry (`LLM_INFRA["UPSTREAMS"]["registry"]`)."""

    upstream = "registry"

    def register(
        self,
        kind: Kind,
        id: str,
        *,
        name: str,
        version: str,
        owner: str,
        status: str = "active",
        metadata: Mapping[str, Any] | None = None,
    ) -> RegistryResult:
        """Create or replace the entry (idempotent)."""
        return self._call(self._register_request(kind, id, name, version, owner, status, metadata))

    async def aregister(
        self,
        kind: Kind,
        id: str,
        *,
        name: str,
        version: str,
        owner: str,
        status: str = "active",
        metadata: Mapping[str, Any] | None = None,
    ) -> RegistryResult:
        """The asyncio twin of `register`."""
        return await self._acall(self._register_request(kind, id, name, version, owner, status, metadata))

    def update(
        self,
        kind: Kind,
        id: str,
        *,
        name: str | None = None,
        version: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RegistryResult:
        """Change the given fields of an existing entry (`found=False` when the registry does not know it)."""
        return self._call(self._update_request(kind, id, name, version, status, metadata))

    async def aupdate(
        self,
        kind: Kind,
        id: str,
        *,
        name: str | None = None,
        version: str | None = None,
        status: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RegistryResult:
        """The asyncio twin of `update`."""
        return await self._acall(self._update_request(kind, id, name, version, status, metadata))

    def deregister(self, kind: Kind, id: str) -> RegistryResult:
        """Remove the entry; `found` says whether it was there."""
        return self._call(self._deregister_request(kind, id))

    async def aderegister(self, kind: Kind, id: str) -> RegistryResult:
        """The asyncio twin of `deregister`."""
        return await self._acall(self._deregister_request(kind, id))

    def lookup(self, kind: Kind, id: str) -> RegistryResult:
        """The registry's entry, or `found=False`."""
        return self._call(self._lookup_request(kind, id))

    async def alookup(self, kind: Kind, id: str) -> RegistryResult:
        """The asyncio twin of `lookup`."""
        return await self._acall(self._lookup_request(kind, id))

    # --- requests -------------------------------------------------------------------------------------------

    def _register_request(
        self,
        kind: Kind,
        id: str,
        name: str,
        version: str,
        owner: str,
        status: str,
        metadata: Mapping[str, Any] | None,
    ) -> UpstreamRequest[RegistryResult]:
        body = {
            "kind": kind,
            "id": id,
            "name": name,
            "version": version,
            "status": status,
            "owner": owner,
            "metadata": dict(metadata or {}),
        }
        return self._request(f"register_{kind}", "PUT", kind, id, body, ok=(200, 201))

    def _update_request(
        self,
        kind: Kind,
        id: str,
        name: str | None,
        version: str | None,
        status: str | None,
        metadata: Mapping[str, Any] | None,
    ) -> UpstreamRequest[RegistryResult]:
        body: dict[str, Any] = {
            key: value for key, value in (("name", name), ("version", version), ("status", status)) if value is not None
        }
        if metadata is not None:
            body["metadata"] = dict(metadata)
        return self._request(f"update_{kind}", "PATCH", kind, id, body, ok=(200,), absent=(404,))

    def _deregister_request(self, kind: Kind, id: str) -> UpstreamRequest[RegistryResult]:
        return self._request(f"deregister_{kind}", "DELETE", kind, id, None, ok=(200, 204), absent=(404,))

    def _lookup_request(self, kind: Kind, id: str) -> UpstreamRequest[RegistryResult]:
        return self._request(f"lookup_{kind}", "GET", kind, id, None, ok=(200,), absent=(404,))

    def _request(
        self,
        operation: str,
        method: str,
        kind: Kind,
        id: str,
        body: dict[str, Any] | None,
        *,
        ok: tuple[int, ...],
        absent: tuple[int, ...] = (),
    ) -> UpstreamRequest[RegistryResult]:
        if kind not in KINDS:
            raise ValueError(f"Unknown registry kind {kind!r}; use one of {', '.join(KINDS)}.")

        def parse(response: httpx.Response) -> RegistryResult:
            if response.status_code in absent:
                return RegistryResult(found=False)
            if method == "DELETE":
                expect_status(response, self.upstream, ok)
                return RegistryResult(found=True)
            return RegistryResult(found=True, entry=self._entry(json_object(response, self.upstream, ok=ok), kind, id))

        return UpstreamRequest(
            operation=operation,
            method=method,
            path=f"/v1/{kind}s/{quote(id, safe='')}",
            json=body,
            parse=parse,
            fail_open=lambda error: RegistryResult(evaluated=False, degraded=True, error=error),
            not_configured=lambda: RegistryResult(evaluated=False),
        )

    def _entry(self, body: Mapping[str, Any], kind: Kind, id: str) -> RegistryEntry:
        service = self.upstream
        data = object_field(body, "entry", service)
        if not data:
            invalid(service, "'entry' is missing")
        entry = RegistryEntry(
            kind=cast(Kind, required_text(data, "kind", service, choices=KINDS, where="entry.")),
            id=required_text(data, "id", service, where="entry."),
            name=required_text(data, "name", service, where="entry."),
            version=required_text(data, "version", service, where="entry."),
            status=required_text(data, "status", service, where="entry."),
            owner=required_text(data, "owner", service, where="entry."),
            metadata=object_field(data, "metadata", service),
            updated_at=optional_text(data, "updated_at", service, where="entry."),
        )
        if (entry.kind, entry.id) != (kind, id):
            invalid(service, f"the entry is {entry.kind} {entry.id!r}, not the requested {kind} {id!r}")
        return entry


@functools.cache
def get_registry_client() -> RegistryClient:
    """The process's Registry client (settings are read at each call)."""
    return RegistryClient()
