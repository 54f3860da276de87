"""Operations URLs to include at the root of a project: `/healthz`, `/readyz`, `/metrics`."""

from django.urls import path

from llm_infra_django import health, metrics

app_name = "llm_infra"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]
