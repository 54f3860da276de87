"""The root page: what this server is and where its doors are (a page for browsers, a JSON index for API clients)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_safe

from apps.gateway.conf import gateway_settings
from llm_infra_django.responses import wants_html

DESCRIPTION = (
    "An LLM marketplace: providers publish LLM services and fine-tuned models; tenants call them with an API key "
    "through a metered, rate-limited, OpenAI-compatible proxy, and manage keys, usage, quotas and sharing through "
    "the admin, a REST API and GraphQL."
)


def _links() -> dict[str, str]:
    links = {
        "admin": reverse("admin:index"),
        "api_docs": reverse("api-docs"),
        "api_schema": reverse("schema"),
        "graphql": reverse("graphql"),
        "models": reverse("v1-models"),
        "healthz": reverse("llm_infra:healthz"),
        "readyz": reverse("llm_infra:readyz"),
    }
    if gateway_settings.GRAPHIQL:
        links["graphiql"] = links["graphql"]
    return links


def _curl_example(request: HttpRequest) -> str:
    url = request.build_absolute_uri(reverse("v1-chat-completions"))
    body = '{"model": "<publisher>/<service>", "messages": [{"role": "user", "content": "Hello!"}]}'
    return f'curl -s {url} -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" -d \'{body}\''


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    """The same links for everyone (nothing of any tenant): an HTML page for browsers, JSON for API clients."""
    links = _links()
    context: dict[str, Any] = {"description": DESCRIPTION, "links": links, "example": _curl_example(request)}
    if wants_html(request):
        response: HttpResponse = render(request, "marketplace/index.html", context)
    else:
        response = JsonResponse({"name": "LLM Marketplace", **context})
    patch_vary_headers(response, ["Accept"])
    return response
