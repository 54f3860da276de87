"""App configuration for `apps.consumption`."""

from typing import Any

from django.apps import AppConfig


def count_live_api_keys(tenant: Any) -> int:
    """The `api_keys` count quota: keys not revoked (what `create_api_key` counts before creating one)."""
    from apps.consumption.models import ApiKey

    return ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()


class ConsumptionConfig(AppConfig):
    name = "apps.consumption"
    label = "consumption"
    verbose_name = "Consumption"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from apps.consumption.usage import dashboard_usage
        from apps.tenancy.dashboard import register_usage_provider
        from apps.tenancy.models import QuotaType
        from apps.tenancy.quotas import register_count_provider

        register_count_provider(QuotaType.API_KEYS, count_live_api_keys)
        register_usage_provider("consumption.rollups", dashboard_usage)

        from apps.consumption.sla import get_sla_statuses
        from apps.publishing.hooks import register_sla_provider

        register_sla_provider(lambda version_id: get_sla_statuses([version_id])[version_id])
