"""Routes of the billing REST API, included under `/api/v1/` (namespace `billing`)."""

from django.urls import path

from apps.billing import views as plain
from apps.billing.api import views

app_name = "billing"

urlpatterns = [
    path("billing/balance/", views.BalanceViewSet.as_view({"get": "retrieve"}), name="balance"),
    path("billing/stripe/webhook/", plain.stripe_webhook, name="stripe-webhook"),
]
