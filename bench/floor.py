"""The floor of a Django stack, for bench/proxy.py: one async Django view forwarding the body to the upstream with one
pooled `httpx.AsyncClient` per event loop — no middleware, no auth, no metering. Served like ours:

    FLOOR_UPSTREAM=http://127.0.0.1:PORT/v1 python -m uvicorn bench.floor:application --workers 2 ...
"""

from __future__ import annotations

import asyncio
import os

import django
import httpx
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

settings.configure(
    DEBUG=False, SECRET_KEY="bench-floor", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"], MIDDLEWARE=[], INSTALLED_APPS=[]
)
django.setup()

UPSTREAM = os.environ.get("FLOOR_UPSTREAM", "http://127.0.0.1:8001/v1")
_clients: dict[int, httpx.AsyncClient] = {}


def client() -> httpx.AsyncClient:
    key = id(asyncio.get_running_loop())
    if key not in _clients:
        _clients[key] = httpx.AsyncClient(limits=httpx.Limits(max_connections=1000, max_keepalive_connections=200))
    return _clients[key]


@csrf_exempt
async def forward(request: HttpRequest) -> HttpResponse:
    answer = await client().post(
        UPSTREAM + "/chat/completions", content=request.body, headers={"Content-Type": "application/json"}
    )
    return HttpResponse(answer.content, status=answer.status_code, content_type="application/json")


urlpatterns = [path("v1/chat/completions", forward)]

from django.core.asgi import get_asgi_application  # noqa: E402

application = get_asgi_application()
