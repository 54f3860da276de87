"""The proxy's ASGI edge: the `/v1/` endpoints served straight from the ASGI scope (llm_infra_django.edge) by the
proxy's entrances — no Django request or response objects, no middleware chain — with the same request id, log
line, metrics and security headers as every other request. marketplace/asgi.py routes `/v1/` here."""

from __future__ import annotations

from apps.consumption import entrances, proxy
from apps.consumption.answers import Reply, error_reply
from apps.consumption.conf import consumption_settings
from llm_infra_django.edge import Edge, EdgeRequest, Handler


def _call(kind: str) -> Handler:
    async def handle(request: EdgeRequest) -> Reply:
        authorization = request.headers.get("authorization")
        return await proxy.handle(kind, authorization=authorization, body=request.body, request_id=request.request_id)

    return handle


async def _models(request: EdgeRequest) -> Reply:
    authorization = request.headers.get("authorization")
    return await entrances.list_models(authorization=authorization, request_id=request.request_id)


def application() -> Edge:
    """The edge of the `/v1/` endpoints (the same entrances the Django views of apps/consumption/urls.py serve)."""
    return Edge(
        {
            "/v1/chat/completions": {"POST": _call("chat")},
            "/v1/completions": {"POST": _call("completions")},
            "/v1/embeddings": {"POST": _call("embeddings")},
            "/v1/models": {"GET": _models},
        },
        errors=error_reply,
        max_body_bytes=lambda: int(consumption_settings.MAX_BODY_BYTES),
        too_large_code="request_too_large",
    )
