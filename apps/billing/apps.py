"""App configuration for `apps.billing`: prepaid credit (grants, payments) and what a tenant has left."""

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "apps.billing"
    label = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Admission (apps.consumption, a layer below) asks this app how much a prepaid tenant was credited.
        from apps.billing.selectors import credit_of
        from apps.consumption.credits import register_credit_source

        register_credit_source(credit_of)
