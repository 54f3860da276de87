"""Mutations of the catalog: each finds its object as the REST view does (what the caller may not see is not found)
and calls the same catalog service, which checks the actor's role and validates the input, naming each bad field
by its path; domain and validation errors are payload errors."""

from __future__ import annotations

from typing import Any

import graphene

from apps.catalog import selectors, services
from apps.catalog.graphql import inputs
from apps.catalog.graphql.queries import version_in
from apps.catalog.graphql.results import ModelLineageEdge
from apps.catalog.graphql.scope import ACTING_ADMIN, WRITE, acting_tenant, plain, plain_id, viewer
from apps.catalog.graphql.types import (
    EVALUATION_NODE,
    CatalogModelNode,
    DatasetNode,
    EvaluationNode,
    ModelVersionNode,
    TrainingRunNode,
)
from apps.catalog.models import ModelStatus, NodeKind
from llm_infra_django.errors import NotFoundError, ValidationError
from llm_infra_django.graphql import FieldError, mutation, node_pk, requires

Errors = graphene.List(graphene.NonNull(FieldError), required=True)
HANDLE = "The model's handle `<owner>--<slug>`."


def _evaluation(info: graphene.ResolveInfo, node_id: str) -> Any:
    return selectors.get_evaluation(viewer(info), node_pk(node_id, EVALUATION_NODE, "Evaluation"))


class ModelCreate(graphene.Mutation):
    """Add a model to the acting tenant's catalog (a draft; admins)."""

    class Arguments:
        input = inputs.CatalogModelCreateInput(required=True)

    model = graphene.Field(CatalogModelNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, input: dict[str, Any]) -> ModelCreate:
        values = plain(input)
        slug = values.pop("slug")
        model = services.create_model(owner=acting_tenant(info), actor=info.context.user, slug=slug, values=values)
        return cls(model=model, errors=[])


class ModelUpdate(graphene.Mutation):
    """Change a model (admins of the owner): any field, and `status` through its state machine; all or nothing."""

    class Arguments:
        slug = graphene.String(required=True, description=HANDLE)
        input = inputs.CatalogModelUpdateInput(required=True)

    model = graphene.Field(CatalogModelNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, input: dict[str, Any]) -> ModelUpdate:
        model = selectors.get_model(viewer(info), slug)
        return cls(model=services.update_model(model=model, actor=info.context.user, values=plain(input)), errors=[])


class ModelArchive(graphene.Mutation):
    """Archive a model (REST `DELETE`; admins of the owner): final, it leaves the listings, its rows stay."""

    class Arguments:
        slug = graphene.String(required=True, description=HANDLE)

    model = graphene.Field(CatalogModelNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str) -> ModelArchive:
        model = selectors.get_model(viewer(info), slug)
        archived = services.change_model_status(model=model, actor=info.context.user, status=ModelStatus.ARCHIVED)
        return cls(model=archived, errors=[])


class ModelVersionCreate(graphene.Mutation):
    """Add a version, greater (SemVer) than every existing one (admins of the owner)."""

    class Arguments:
        slug = graphene.String(required=True, description=HANDLE)
        input = inputs.ModelVersionCreateInput(required=True)

    model_version = graphene.Field(ModelVersionNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, input: dict[str, Any]) -> ModelVersionCreate:
        model = selectors.get_model(viewer(info), slug)
        values = plain(input)
        number = values.pop("version")
        served_by = [plain_id(i) for i in values.pop("served_by", None) or []]
        created = services.create_version(
            model=model, actor=info.context.user, version=number, values=values, served_by=served_by
        )
        return cls(model_version=selectors.get_version(model, created.version), errors=[])


class ModelVersionUpdate(graphene.Mutation):
    """Change a version (admins of the owner): status by its state machine, changelog, performance figures,
    serving service versions; artifacts only while building."""

    class Arguments:
        slug = graphene.String(required=True, description=HANDLE)
        version = graphene.String(required=True)
        input = inputs.ModelVersionFieldsInput(required=True)

    model_version = graphene.Field(ModelVersionNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(
        cls, root: Any, info: graphene.ResolveInfo, slug: str, version: str, input: dict[str, Any]
    ) -> ModelVersionUpdate:
        model = selectors.get_model(viewer(info), slug)
        values = plain(input)
        served_by = values.pop("served_by", None)
        services.update_version(
            version=selectors.get_version(model, version),
            actor=info.context.user,
            values=values,
            served_by=None if served_by is None else [plain_id(i) for i in served_by],
        )
        return cls(model_version=selectors.get_version(model, version), errors=[])


class LineageEdgeAdd(graphene.Mutation):
    """Record "source <type> target" in the model owner's lineage (admins); a cycle is refused (`lineage_cycle`)."""

    class Arguments:
        slug = graphene.String(required=True, description=HANDLE)
        input = inputs.LineageEdgeInput(required=True)

    edge = graphene.Field(ModelLineageEdge)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, slug: str, input: dict[str, Any]) -> LineageEdgeAdd:
        model = selectors.get_model(viewer(info), slug)
        data = plain(input)
        for end in ("source", "target"):
            if data[end]["kind"] != NodeKind.BASE_MODEL:  # the others accept Relay ids too
                data[end]["ref"] = plain_id(data[end]["ref"])
        edge = services.add_lineage_edge(
            owner=model.owner,
            actor=info.context.user,
            source=data["source"],
            target=data["target"],
            edge_type=data["type"],
        )
        payload = {"source": edge.source.uid, "target": edge.target.uid, "type": edge.edge_type, "points": []}
        return cls(edge=payload, errors=[])


class DatasetCreate(graphene.Mutation):
    """Register a dataset of the acting tenant (admins)."""

    class Arguments:
        input = inputs.DatasetCreateInput(required=True)

    dataset = graphene.Field(DatasetNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, input: dict[str, Any]) -> DatasetCreate:
        values = plain(input)
        slug = values.pop("slug")
        dataset = services.create_dataset(owner=acting_tenant(info), actor=info.context.user, slug=slug, values=values)
        return cls(dataset=dataset, errors=[])


class DatasetUpdate(graphene.Mutation):
    """Change a dataset (admins of the owner)."""

    class Arguments:
        ref = graphene.String(required=True, description="The dataset's id or handle.")
        input = inputs.DatasetFieldsInput(required=True)

    dataset = graphene.Field(DatasetNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, ref: str, input: dict[str, Any]) -> DatasetUpdate:
        dataset = selectors.get_dataset(viewer(info), str(plain_id(ref)))
        updated = services.update_dataset(dataset=dataset, actor=info.context.user, values=plain(input))
        return cls(dataset=updated, errors=[])


class TrainingRunCreate(graphene.Mutation):
    """Record a training run of the acting tenant (admins): it is trained_on its datasets and the version it
    produced derives from it."""

    class Arguments:
        input = inputs.TrainingRunCreateInput(required=True)

    training_run = graphene.Field(TrainingRunNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE, ACTING_ADMIN)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, input: dict[str, Any]) -> TrainingRunCreate:
        owner = acting_tenant(info)
        values = plain(input)
        datasets = [plain_id(ref) for ref in values.pop("datasets", None) or []]
        produced = values.pop("model_version", None)
        run = services.create_training_run(
            owner=owner,
            actor=info.context.user,
            values=values,
            datasets=datasets,
            model_version=None if produced is None else plain_id(produced),
        )
        return cls(training_run=selectors.list_training_runs(owner).get(pk=run.pk), errors=[])


class EvaluationCreate(graphene.Mutation):
    """Submit an evaluation of a version (admins of the model's owner): a result, a failed run, or `run: true` for
    the configured evaluator. The quality score is recomputed."""

    class Arguments:
        input = inputs.EvaluationCreateInput(required=True)

    evaluation = graphene.Field(EvaluationNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, input: dict[str, Any]) -> EvaluationCreate:
        values = plain(input)
        handle, number = values.pop("model"), values.pop("version")
        try:
            model = selectors.get_model(viewer(info), handle)
        except NotFoundError:
            raise ValidationError(fields={"model": [f"No model visible to you has the handle {handle!r}."]}) from None
        evaluation = services.submit_evaluation(
            version=version_in(model, number), actor=info.context.user, values=values
        )
        return cls(evaluation=selectors.get_evaluation(viewer(info), evaluation.pk), errors=[])


class EvaluationUpdate(graphene.Mutation):
    """Correct an evaluation (admins of the model's owner); the quality score is recomputed."""

    class Arguments:
        id = graphene.ID(required=True)
        input = inputs.EvaluationFieldsInput(required=True)

    evaluation = graphene.Field(EvaluationNode)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str, input: dict[str, Any]) -> EvaluationUpdate:
        updated = services.update_evaluation(
            evaluation=_evaluation(info, id), actor=info.context.user, values=plain(input)
        )
        return cls(evaluation=selectors.get_evaluation(viewer(info), updated.pk), errors=[])


class EvaluationDelete(graphene.Mutation):
    """Withdraw an evaluation (admins of the model's owner); the quality score is recomputed."""

    class Arguments:
        id = graphene.ID(required=True)

    ok = graphene.Boolean(required=True)
    errors = Errors

    @classmethod
    @mutation()
    @requires(WRITE)
    def mutate(cls, root: Any, info: graphene.ResolveInfo, id: str) -> EvaluationDelete:
        services.delete_evaluation(evaluation=_evaluation(info, id), actor=info.context.user)
        return cls(ok=True, errors=[])


class Mutations(graphene.ObjectType):
    model_create = ModelCreate.Field()
    model_update = ModelUpdate.Field()
    model_archive = ModelArchive.Field()
    model_version_create = ModelVersionCreate.Field()
    model_version_update = ModelVersionUpdate.Field()
    lineage_edge_add = LineageEdgeAdd.Field()
    dataset_create = DatasetCreate.Field()
    dataset_update = DatasetUpdate.Field()
    training_run_create = TrainingRunCreate.Field()
    evaluation_create = EvaluationCreate.Field()
    evaluation_update = EvaluationUpdate.Field()
    evaluation_delete = EvaluationDelete.Field()
