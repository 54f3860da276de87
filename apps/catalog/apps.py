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
        _invalidate_offers_on_change()


def _invalidate_offers_on_change() -> None:
    """A model's cached offers (see offers.py) are dropped when it, one of its versions or one of its links changes."""
    from django.db import transaction
    from django.db.models.signals import post_delete, post_save

    from apps.catalog.models import CatalogModel, ModelVersion, ServedBy
    from apps.catalog.offers import invalidate_model

    def model_of(instance: object) -> CatalogModel | None:
        if isinstance(instance, CatalogModel):
            return instance
        if isinstance(instance, ModelVersion):
            return CatalogModel.objects.select_related("owner").filter(pk=instance.model_id).first()
        if isinstance(instance, ServedBy):
            return CatalogModel.objects.select_related("owner").filter(versions__pk=instance.model_version_id).first()
        return None

    def changed(sender: type, instance: object, **kwargs: object) -> None:
        model = model_of(instance)
        if model is not None:
            transaction.on_commit(lambda: invalidate_model(model))
            invalidate_model(model)

    for model_class in (CatalogModel, ModelVersion, ServedBy):
        post_save.connect(changed, sender=model_class, dispatch_uid=f"catalog_offers_{model_class.__name__}")
        post_delete.connect(changed, sender=model_class, dispatch_uid=f"catalog_offers_del_{model_class.__name__}")
