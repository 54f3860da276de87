"""App configuration for `apps.gateway`."""

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    name = "apps.gateway"
    label = "gateway"
    verbose_name = "GraphQL gateway"
    default_auto_field = "django.db.models.BigAutoField"
