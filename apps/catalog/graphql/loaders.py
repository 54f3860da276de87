"""Nested catalog relations loaded for a whole page at once (`load_related`): a nested query runs one SQL query per
relation, however many nodes each page has. Also the model version serving a publishing service version, for the
gateway's publishing types (by `pk` and `_meta.label` only: catalog does not import publishing)."""

from __future__ import annotations

from typing import Any

import graphene
from django.db.models import Model, QuerySet

from apps.catalog import selectors
from apps.catalog.graphql.scope import viewer
from apps.catalog.models import CatalogModel, Evaluation, ModelVersion, ServedBy
from llm_infra_django.graphql import announce, load_related

SERVICE_VERSION_MODEL: type[Model] = ServedBy._meta.get_field("service_version").related_model  # type: ignore[assignment]


def _grouped(queryset: QuerySet[Any], key: str, parents: list[Any], back: str) -> dict[Any, list[Any]]:
    """Rows of `queryset` whose foreign key `key` is one of `parents`, grouped by it, each row's `back` relation
    set to its (already loaded) parent."""
    by_pk = {parent.pk: parent for parent in parents}
    grouped: dict[Any, list[Any]] = {}
    for row in queryset.filter(**{f"{key}__in": list(by_pk)}):
        setattr(row, back, by_pk[getattr(row, key)])
        grouped.setdefault(getattr(row, key), []).append(row)
    return grouped


def forward(info: graphene.ResolveInfo, obj: Any, name: str, queryset: QuerySet[Any]) -> Any:
    """The object a foreign key `name` of `obj` points to, announced with those of every sibling (so their own
    nested lists batch); siblings loaded without it get theirs in one query from `queryset`."""
    field = type(obj)._meta.get_field(name)

    def load(instances: list[Any]) -> dict[Any, Any]:
        missing = {getattr(i, field.attname) for i in instances if not field.is_cached(i)} - {None}
        fetched = queryset.in_bulk(list(missing)) if missing else {}
        found = {}
        for instance in instances:
            if not field.is_cached(instance):
                setattr(instance, name, fetched.get(getattr(instance, field.attname)))
            found[instance.pk] = getattr(instance, name)
        return found

    return load_related(info, obj, name, load)


def versions_of(info: graphene.ResolveInfo, model: CatalogModel) -> list[ModelVersion]:
    """The model's versions, greatest SemVer first (everyone who sees a model sees all its versions)."""

    def load(models: list[CatalogModel]) -> dict[Any, list[ModelVersion]]:
        grouped = _grouped(ModelVersion.objects.all(), "model_id", models, "model")
        return {pk: selectors.sort_versions(versions) for pk, versions in grouped.items()}

    return load_related(info, model, "versions", load, default=list)


def evaluations_of(info: graphene.ResolveInfo, version: ModelVersion) -> list[Evaluation]:
    """The version's evaluations, newest first."""
    queryset = Evaluation.objects.order_by("-created_at", "id")
    return load_related(
        info,
        version,
        "evaluations",
        lambda versions: _grouped(queryset, "model_version_id", versions, "model_version"),
        default=list,
    )


def served_by_of(info: graphene.ResolveInfo, version: ModelVersion) -> list[ServedBy]:
    """The links to the service versions serving the version (as the REST API shows them)."""
    queryset = ServedBy.objects.select_related("service_version__service__publisher")
    return load_related(
        info,
        version,
        "served_by",
        lambda versions: _grouped(queryset, "model_version_id", versions, "model_version"),
        default=list,
    )


def model_of(info: graphene.ResolveInfo, version: ModelVersion) -> CatalogModel:
    return forward(info, version, "model", CatalogModel.objects.select_related("owner"))


def version_of(info: graphene.ResolveInfo, obj: Any) -> ModelVersion | None:
    """The model version of an evaluation or a training run."""
    return forward(info, obj, "model_version", ModelVersion.objects.select_related("model__owner"))


def model_version_for_service_version(info: graphene.ResolveInfo, service_version: Any) -> ModelVersion | None:
    """The catalog model version served by a publishing service version (a `publishing.ServiceVersion` instance or
    its pk), if the caller may see its model; the first linked one when several are. Loaded in one query for every
    announced service version (`llm_infra_django.graphql.announce(info, versions)` them, as a
    `PagedConnectionField` does for its page); the versions found are announced in turn, so their own nested
    lists (evaluations, ...) batch too."""
    service_version = _service_version(service_version)
    seen = viewer(info)

    def load(service_versions: list[Any]) -> dict[Any, ModelVersion]:
        links = (
            ServedBy.objects.filter(
                service_version_id__in=[sv.pk for sv in service_versions],
                model_version__model__in=selectors.visible_models(seen),
            )
            .select_related("model_version__model__owner")
            .order_by("created_at", "id")
        )
        found: dict[Any, ModelVersion] = {}
        for link in links:
            found.setdefault(link.service_version_id, link.model_version)
        return found

    return load_related(info, service_version, "catalog.model_version", load)


def announce_service_versions(info: graphene.ResolveInfo, service_versions: list[Any]) -> None:
    """Announce service versions (instances or pks) as siblings for `model_version_for_service_version`."""
    announce(info, [_service_version(sv) for sv in service_versions])


def _service_version(value: Any) -> Model:
    """A service version instance, or a stand-in carrying only its pk (enough for `load_related`)."""
    if isinstance(value, Model):
        return value
    return SERVICE_VERSION_MODEL(pk=SERVICE_VERSION_MODEL._meta.pk.to_python(value))
