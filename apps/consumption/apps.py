"""App configuration for `apps.consumption`."""

from django.apps import AppConfig


class ConsumptionConfig(AppConfig):
    name = "apps.consumption"
    label = "consumption"
    verbose_name = "Consumption"
    default_auto_field = "django.db.models.BigAutoField"
