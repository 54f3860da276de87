"""App configuration for `apps.publishing`."""

from django.apps import AppConfig


class PublishingConfig(AppConfig):
    name = "apps.publishing"
    label = "publishing"
    verbose_name = "Publishing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.core.exceptions import ValidationError

        # The services queue their tasks by registered name (they never import the tasks, which import them): the
        # import registers the tasks in every process, so without a broker (eager mode) they run in-process.
        import apps.publishing.tasks  # noqa: F401
        from apps.publishing import selectors
        from apps.publishing.models import Service, ServiceVersion
        from apps.publishing.signals import version_status_changed
        from apps.tenancy.models import QuotaType
        from apps.tenancy.quotas import register_count_provider
        from apps.tenancy.sharing import register_resource_type

        def service_owner(resource_id: str):  # type: ignore[no-untyped-def]
            # Only the canonical spelling names a service: policies must match `str(service.pk)` exactly.
            try:
                service = Service.objects.select_related("publisher").filter(pk=resource_id).first()
            except (ValueError, ValidationError):
                return None
            return service.publisher if service and str(service.pk) == resource_id else None

        def drop_routes(sender: type, version: ServiceVersion, **kwargs: object) -> None:
            selectors.invalidate_routes(version)

        register_resource_type("service", service_owner, open_by_default=True)
        register_count_provider(QuotaType.SERVICES_PUBLISHED, selectors.count_services_published)
        version_status_changed.connect(drop_routes, dispatch_uid="publishing.invalidate_routes", weak=False)
