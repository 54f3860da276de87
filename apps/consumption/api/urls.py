"""Routes of the consumption REST API, included under `/api/v1/` (namespace `consumption`)."""

from django.urls import path

from apps.consumption.api import views

app_name = "consumption"

urlpatterns = [
    path("keys/", views.ApiKeyViewSet.as_view({"get": "list", "post": "create"}), name="key-list"),
    path("keys/<uuid:pk>/", views.ApiKeyViewSet.as_view({"get": "retrieve"}), name="key-detail"),
    path("keys/<uuid:pk>/rotate/", views.ApiKeyViewSet.as_view({"post": "rotate"}), name="key-rotate"),
    path("keys/<uuid:pk>/revoke/", views.ApiKeyViewSet.as_view({"post": "revoke"}), name="key-revoke"),
    path("usage/", views.UsageViewSet.as_view({"get": "list"}), name="usage-list"),
    path("usage/summary/", views.UsageViewSet.as_view({"get": "summary"}), name="usage-summary"),
    path("quota/", views.QuotaViewSet.as_view({"get": "retrieve"}), name="quota"),
    path("routing/", views.RoutingViewSet.as_view({"get": "retrieve", "put": "update"}), name="routing"),
    # Under the catalog's `models/<handle>/…` (its URLs have no `offers/`): the offers need consumption's health.
    path(
        "models/<str:slug>/offers/",
        views.ModelOfferViewSet.as_view({"get": "list", "post": "create"}),
        name="model-offers",
    ),
    path(
        "models/<str:slug>/offers/<uuid:link_id>/",
        views.ModelOfferViewSet.as_view({"delete": "destroy"}),
        name="model-offer",
    ),
]
