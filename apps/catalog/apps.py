"""App configuration for `apps.catalog`."""

from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "apps.catalog"
    label = "catalog"
    verbose_name = "Model catalog"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The services queue their tasks by registered name (they never import the tasks, which import them): the
        # import registers the tasks in every process, so without a broker (eager mode) they run in-process.
        import apps.catalog.tasks  # noqa: F401
        from apps.catalog.models import CatalogModel, Dataset
        from apps.tenancy.models import Tenant
        from apps.tenancy.sharing import register_resource_type

        def model_owner(resource_id: str) -> Tenant | None:
            found = CatalogModel.objects.select_related("owner").filter(sharing_id=resource_id).first()
            return found.owner if found else None

        def dataset_owner(resource_id: str) -> Tenant | None:
            found = Dataset.objects.select_related("owner").filter(sharing_id=resource_id).first()
            return found.owner if found else None

        register_resource_type("model", model_owner)
        register_resource_type("dataset", dataset_owner)
