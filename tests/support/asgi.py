"""Requests to the project's ASGI applications in-process (the proxy's edge as `marketplace/asgi.py` builds it), from
synchronous tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from asgiref.sync import async_to_sync

from apps.consumption.edge import application
from llm_infra_django.edge import Edge


def proxy_application() -> Edge:
    """The edge `marketplace/asgi.py` routes `/v1/` to."""
    return application()


def asgi_request(
    app: Any, method: str, path: str, *, headers: Mapping[str, str] | None = None, scheme: str = "http"
) -> httpx.Response:
    """One request to `app` through httpx's ASGI transport (database work runs on the calling thread)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=f"{scheme}://testserver") as client:
            return await client.request(method, path, headers=dict(headers or {}))

    return async_to_sync(send)()
