"""App configuration for `apps.consumption`."""

from typing import Any

from django.apps import AppConfig


def count_live_api_keys(tenant: Any) -> int:
    """The `api_keys` count quota: keys not revoked (what `create_api_key` counts before creating one)."""
    from apps.consumption.models import ApiKey

    return ApiKey.objects.filter(tenant=tenant, revoked_at__isnull=True).count()


def flag_suspension(sender: Any, tenant: Any, **kwargs: Any) -> None:
    """A tenant suspended (or deactivated) is refused by every worker's next admission; reactivated, admitted again."""
    from apps.consumption.flags import set_tenant_suspended

    set_tenant_suspended(str(tenant.pk), not tenant.is_operational)


def end_keys_of_deactivated_user(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """A user saved as inactive (admin, shell, any service) leaves every tenant: their keys follow."""
    if not raw and not instance.is_active:
        from apps.consumption.services import revoke_keys_of

        revoke_keys_of(user_id=instance.pk, reason="creator_deactivated")


def end_keys_of_deleted_user(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Before a user row goes (their keys' `created_by` is then emptied, which would make them service accounts)."""
    from apps.consumption.services import revoke_keys_of

    revoke_keys_of(user_id=instance.pk, reason="creator_deleted")


def end_keys_of_former_member(sender: Any, instance: Any, **kwargs: Any) -> None:
    """A membership removed (`remove_member`, the admin, a cascade): the person's keys in that tenant follow."""
    from apps.consumption.services import revoke_keys_of

    revoke_keys_of(user_id=instance.user_id, tenant_id=instance.tenant_id, reason="creator_left_tenant")


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

        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save, pre_delete

        from apps.tenancy.models import Membership

        user_model = get_user_model()
        post_save.connect(end_keys_of_deactivated_user, sender=user_model, dispatch_uid="consumption.keys_deactivated")
        pre_delete.connect(end_keys_of_deleted_user, sender=user_model, dispatch_uid="consumption.keys_deleted")
        pre_delete.connect(end_keys_of_former_member, sender=Membership, dispatch_uid="consumption.keys_left")

        from apps.tenancy.signals import tenant_changed

        tenant_changed.connect(flag_suspension, dispatch_uid="consumption.tenant_suspension")

        from apps.consumption.offers import link_served_models, serves_issues
        from apps.publishing.hooks import register_serves_checker
        from apps.publishing.signals import version_status_changed

        register_serves_checker(serves_issues)
        version_status_changed.connect(link_served_models, dispatch_uid="consumption.link_served_models", weak=False)
