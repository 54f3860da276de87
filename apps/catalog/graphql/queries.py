"""Queries of the catalog: the same selectors, scoping and query validation (the REST serializers) as the REST API.
Reads are open to anonymous callers, who see public rows only; what the caller may not see is null or absent."""

from __future__ import annotations

from typing import Any

import graphene

from apps.catalog import lineage as lineage_rules
from apps.catalog import selectors
from apps.catalog.api import serializers
from apps.catalog.graphql.results import LeaderboardConnection, ModelLineage
from apps.catalog.graphql.scope import ACTING_MEMBER, acting_tenant, viewer
from apps.catalog.graphql.types import (
    CatalogModelConnection,
    CatalogModelNode,
    DatasetConnection,
    DatasetNode,
    EvaluationConnection,
    ModelVersionNode,
    TrainingRunConnection,
)
from apps.catalog.models import CatalogModel, Dataset, ModelVersion
from llm_infra_django.drf.validation import checked, validated
from llm_infra_django.errors import NotFoundError, ValidationError
from llm_infra_django.graphql import Decimal as GqlDecimal
from llm_infra_django.graphql import PagedConnectionField, requires

HANDLE = "The model's handle `<owner>--<slug>` (as in /api/v1/models/{slug}/)."


def _given(**values: Any) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _model_or_none(info: graphene.ResolveInfo, handle: str) -> CatalogModel | None:
    try:
        return selectors.get_model(viewer(info), handle)
    except NotFoundError:
        return None


def version_in(model: CatalogModel, version: str, field: str = "version") -> ModelVersion:
    """A version of the model named in input: a validation error naming `field` when it has none such."""
    try:
        return selectors.get_version(model, version)
    except NotFoundError:
        raise ValidationError(fields={field: [f"{model.handle} has no version {version!r}."]}) from None


class Queries(graphene.ObjectType):
    catalog_models = PagedConnectionField(
        CatalogModelConnection,
        search=graphene.String(description="Words found in name, description or tags."),
        category=graphene.String(),
        model_type=graphene.String(),
        tags=graphene.List(graphene.NonNull(graphene.String), description="All must match."),
        languages=graphene.List(graphene.NonNull(graphene.String), description="ISO 639-1 codes; all must match."),
        license=graphene.String(),
        min_quality=GqlDecimal(),
        commercial_use=graphene.Boolean(),
        visibility=graphene.String(),
        status=graphene.String(),
        owner=graphene.String(description="Owner tenant's slug."),
        ordering=graphene.String(description=f"One of {', '.join(selectors.ORDERINGS)} (default -quality)."),
        description="Models you may see (anonymous callers: public ones), filtered, with facet counts.",
    )
    catalog_model = graphene.Field(CatalogModelNode, slug=graphene.String(required=True, description=HANDLE))
    model_version = graphene.Field(
        ModelVersionNode,
        slug=graphene.String(required=True, description=HANDLE),
        version=graphene.String(required=True, description="SemVer, e.g. 1.2.0."),
    )
    lineage = graphene.Field(
        ModelLineage,
        slug=graphene.String(required=True, description=HANDLE),
        depth=graphene.Int(description="Edges to follow each way (default 5, at most the configured maximum)."),
        version=graphene.String(description="Only this version's lineage (default: all versions)."),
        description="A model's lineage within `depth` edges, laid out for drawing; nodes you may not see are "
        "anonymous.",
    )
    evaluations = PagedConnectionField(
        EvaluationConnection,
        model=graphene.String(description=HANDLE),
        version=graphene.String(description="With `model`: one version."),
        benchmark=graphene.String(),
        status=graphene.String(),
        description="Evaluations of the models you may see, newest first.",
    )
    leaderboard = PagedConnectionField(
        LeaderboardConnection,
        benchmark=graphene.String(description="Benchmark name (mmlu, humaneval, a custom name); none: quality."),
        benchmark_version=graphene.String(),
        category=graphene.String(),
        description="Visible models ranked by a benchmark's best completed result, or by quality score.",
    )
    datasets = PagedConnectionField(
        DatasetConnection,
        owner=graphene.String(description="Owner tenant's slug."),
        visibility=graphene.String(),
        license=graphene.String(),
        commercial_use=graphene.Boolean(),
        description="Datasets you may see.",
    )
    dataset = graphene.Field(DatasetNode, ref=graphene.String(required=True, description="Id or handle."))
    training_runs = PagedConnectionField(
        TrainingRunConnection, description="Training runs of the acting tenant (members only)."
    )

    @staticmethod
    def resolve_catalog_models(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        params = _given(
            q=kwargs.get("search"),
            category=kwargs.get("category"),
            model_type=kwargs.get("model_type"),
            tags=kwargs.get("tags"),
            languages=kwargs.get("languages"),
            license=kwargs.get("license"),
            min_quality=kwargs.get("min_quality"),
            commercial_use=kwargs.get("commercial_use"),
            visibility=kwargs.get("visibility"),
            status=kwargs.get("status"),
            owner=kwargs.get("owner"),
            ordering=kwargs.get("ordering"),
        )
        query = checked(serializers.ModelSearchSerializer(data=params))
        # The versions come from one query per page (`versions_of`), with every field: not from the listing's own
        # prefetch of a few.
        return selectors.search_models(viewer(info), query.filters()).prefetch_related(None)

    @staticmethod
    def resolve_catalog_model(root: Any, info: graphene.ResolveInfo, slug: str) -> CatalogModel | None:
        return _model_or_none(info, slug)

    @staticmethod
    def resolve_model_version(root: Any, info: graphene.ResolveInfo, slug: str, version: str) -> ModelVersion | None:
        model = _model_or_none(info, slug)
        if model is None:
            return None
        try:
            return selectors.get_version(model, version)
        except NotFoundError:
            return None

    @staticmethod
    def resolve_lineage(
        root: Any, info: graphene.ResolveInfo, slug: str, depth: int | None = None, version: str | None = None
    ) -> dict[str, Any] | None:
        params = validated(serializers.LineageQuerySerializer, _given(depth=depth, version=version))
        model = _model_or_none(info, slug)
        if model is None:
            return None
        if params.get("version"):
            version_in(model, params["version"])
        return selectors.model_lineage(
            model,
            depth=lineage_rules.clean_depth(params.get("depth")),
            version=params.get("version"),
            viewer=viewer(info),
        )

    @staticmethod
    def resolve_evaluations(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        params = validated(
            serializers.EvaluationQuerySerializer,
            _given(**{k: kwargs.get(k) for k in ("model", "version", "benchmark", "status")}),
        )
        return selectors.search_evaluations(viewer(info), **params)

    @staticmethod
    def resolve_leaderboard(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> list[dict[str, Any]]:
        params = validated(
            serializers.LeaderboardQuerySerializer,
            _given(**{k: kwargs.get(k) for k in ("benchmark", "benchmark_version", "category")}),
        )
        return selectors.leaderboard(viewer(info), **params)

    @staticmethod
    def resolve_datasets(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        params = validated(
            serializers.DatasetQuerySerializer,
            _given(**{k: kwargs.get(k) for k in ("owner", "visibility", "license", "commercial_use")}),
        )
        return selectors.search_datasets(viewer(info), **params)

    @staticmethod
    def resolve_dataset(root: Any, info: graphene.ResolveInfo, ref: str) -> Dataset | None:
        try:
            return selectors.get_dataset(viewer(info), ref)
        except NotFoundError:
            return None

    @staticmethod
    @requires(ACTING_MEMBER)
    def resolve_training_runs(root: Any, info: graphene.ResolveInfo, **kwargs: Any) -> Any:
        return selectors.list_training_runs(acting_tenant(info))
