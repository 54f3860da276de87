"""Reads of the catalog: who sees what, search with facets, versions, lineage, leaderboard, comparison, compliance.

Visibility (one rule for models and datasets): the owner tenant sees all its rows; everyone sees `public` rows;
callers registered with a tenant also see `marketplace` rows; a tenant named in the allowed list of the row's
tenancy sharing policy sees `tenant` rows; an active sharing grant shows any non-private row to its holder; a tenant
on the policy's block list never sees the row (unless it owns it). For models, non-owners only see published or
deprecated ones. Platform superusers see everything. A row that is not visible is a 404, never a 403.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import semver
from django.db.models import Count, F, Prefetch, Q, QuerySet, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from apps.catalog import lineage
from apps.catalog.compliance import ComplianceReport, check_compliance
from apps.catalog.conf import catalog_settings
from apps.catalog.models import (
    CatalogModel,
    Dataset,
    Evaluation,
    EvaluationStatus,
    LineageEdge,
    LineageGraph,
    LineageNode,
    ModelStatus,
    ModelVersion,
    NodeKind,
    ServedBy,
    TrainingRun,
    VersionStatus,
)
from apps.tenancy.context import resolve_tenant
from apps.tenancy.models import Grant, GrantStatus, Membership, SharingPolicy, Tenant, Visibility
from llm_infra_django.errors import NotFoundError, ValidationError

LISTED_MODEL_STATUSES = (ModelStatus.PUBLISHED, ModelStatus.DEPRECATED)
RESOURCE_MODEL = "model"
RESOURCE_DATASET = "dataset"


@dataclass(frozen=True)
class Viewer:
    """Who is looking: the tenant acted for (if any), whether the caller is registered (a member of some tenant,
    which shows `marketplace` rows), and whether it is a platform superuser (sees everything)."""

    tenant: Tenant | None = None
    registered: bool = False
    everything: bool = False

    @classmethod
    def of(cls, tenant: Tenant) -> Viewer:
        return cls(tenant=tenant, registered=True)


ANONYMOUS = Viewer()


def viewer_of_request(request: Any) -> Viewer:
    """Who is looking, for an HTTP request (REST or GraphQL): the tenant it acts for (API key, `X-Tenant` header or
    single membership; a header naming a foreign tenant is refused), whether the caller is registered with some
    tenant, and whether it is a platform superuser (never through an API key). Cached on the request."""
    cached: Viewer | None = getattr(request, "_catalog_viewer", None)
    if cached is None:
        user = request.user
        tenant = resolve_tenant(request)
        authenticated = bool(getattr(user, "is_authenticated", False))
        registered = tenant is not None or (authenticated and Membership.objects.filter(user=user).exists())
        cached = Viewer(tenant=tenant, registered=registered, everything=bool(getattr(user, "is_superuser", False)))
        request._catalog_viewer = cached
    return cached


def visible_q(viewer: Viewer, resource_type: str, *, listed_statuses: Sequence[str] | None = None) -> Q:
    """The filter selecting the rows (models or datasets) `viewer` may see."""
    if viewer.everything:
        return Q()
    shared = Q(visibility=Visibility.PUBLIC)
    if viewer.registered:
        shared |= Q(visibility=Visibility.MARKETPLACE)
    tenant = viewer.tenant
    if tenant is not None:
        policies = SharingPolicy.objects.filter(resource_type=resource_type)
        now = timezone.now()
        granted = Grant.objects.filter(
            Q(expires_at__isnull=True) | Q(expires_at__gt=now),
            policy__resource_type=resource_type,
            consumer=tenant,
            status=GrantStatus.ACTIVE,
        ).values("policy__resource_id")
        shared |= Q(
            visibility=Visibility.TENANT, sharing_id__in=policies.filter(allowed_tenants=tenant).values("resource_id")
        )
        shared |= Q(sharing_id__in=granted) & ~Q(visibility=Visibility.PRIVATE)
        shared &= ~Q(sharing_id__in=policies.filter(blocked_tenants=tenant).values("resource_id"))
    if listed_statuses is not None:
        shared &= Q(status__in=listed_statuses)
    return shared | Q(owner=tenant) if tenant is not None else shared


def visible_models(viewer: Viewer) -> QuerySet[CatalogModel]:
    return CatalogModel.objects.filter(visible_q(viewer, RESOURCE_MODEL, listed_statuses=LISTED_MODEL_STATUSES))


def visible_datasets(viewer: Viewer) -> QuerySet[Dataset]:
    return Dataset.objects.filter(visible_q(viewer, RESOURCE_DATASET))


# --- Versions ------------------------------------------------------------------------------------------------


def semver_key(version: ModelVersion) -> semver.Version:
    return semver.Version.parse(version.version)


def sort_versions(versions: Iterable[ModelVersion]) -> list[ModelVersion]:
    """Greatest SemVer first (pre-releases below their release, numeric identifiers compared as numbers)."""
    return sorted(versions, key=semver_key, reverse=True)


def greatest_version(versions: Iterable[ModelVersion]) -> ModelVersion | None:
    ordered = sort_versions(versions)
    return ordered[0] if ordered else None


def latest_version(versions: Iterable[ModelVersion]) -> ModelVersion | None:
    """The version consumers should use: the greatest `ready` release (pre-releases are never "latest")."""
    return greatest_version(v for v in versions if v.status == VersionStatus.READY and not v.prerelease)


def versions_prefetch() -> Prefetch:
    return Prefetch(
        "versions",
        queryset=ModelVersion.objects.only(
            "id", "model_id", "version", "major", "minor", "patch", "prerelease", "status", "quality_score"
        ),
    )


def list_versions(model: CatalogModel) -> list[ModelVersion]:
    served = Prefetch("served_by", queryset=ServedBy.objects.select_related("service_version__service__publisher"))
    versions = ModelVersion.objects.filter(model=model).prefetch_related(served)
    for version in versions:
        version.model = model
    return sort_versions(versions)


def get_version(model: CatalogModel, version: str) -> ModelVersion:
    found = next((v for v in list_versions(model) if v.version == version), None)
    if found is None:
        raise NotFoundError("Version", f"{model.handle}@{version}")
    return found


def list_offer_links(models: Sequence[CatalogModel]) -> list[ServedBy]:
    """The offers (`ServedBy` links) of the models' versions, each with its model version and service version (and
    that one's service and publisher) loaded: greatest model version first, then oldest link first."""
    links = ServedBy.objects.filter(model_version__model__in=[m.pk for m in models]).select_related(
        "model_version", "service_version__service__publisher"
    )
    by_pk = {model.pk: model for model in models}
    for link in links:
        link.model_version.model = by_pk[link.model_version.model_id]
    return sorted(links, key=lambda link: (semver_key(link.model_version), -link.created_at.timestamp()), reverse=True)


def get_offer_link(model: CatalogModel, link_id: Any) -> ServedBy:
    """One offer of the model by its link id (404 for any other id, another model's offers included)."""
    link = (
        ServedBy.objects.filter(pk=link_id, model_version__model=model)
        .select_related("model_version__model__owner", "service_version__service__publisher")
        .first()
    )
    if link is None:
        raise NotFoundError("Offer", str(link_id))
    return link


# --- Models: lookup, search, facets --------------------------------------------------------------------------


# `<tenant slug>--<slug>`: lower-case letters, digits and single hyphens on each side.
_HANDLE = re.compile(r"([a-z0-9]+(?:-[a-z0-9]+)*)--([a-z0-9]+(?:-[a-z0-9]+)*)")


def split_handle(handle: str) -> tuple[str, str] | None:
    """`owner--slug` → (owner, slug); None when the text is not a handle (nothing else reaches a query: a NUL
    character, for one, is a database error there)."""
    match = _HANDLE.fullmatch(handle) if isinstance(handle, str) else None
    return (match[1], match[2]) if match else None


def get_model(viewer: Viewer, handle: str) -> CatalogModel:
    """The model with this handle if the viewer may see it (404 otherwise, whether it exists or not)."""
    parts = split_handle(handle)
    found = None
    if parts is not None:
        found = (
            visible_models(viewer)
            .select_related("owner")
            .prefetch_related(versions_prefetch())
            .filter(owner__slug=parts[0], slug=parts[1])
            .first()
        )
    if found is None:
        raise NotFoundError("Model", handle)
    return found


@dataclass(frozen=True)
class ModelFilters:
    q: str = ""
    category: str = ""
    model_type: str = ""
    tags: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    license: str = ""
    min_quality: Decimal | None = None
    commercial_use: bool | None = None
    visibility: str = ""
    status: str = ""
    owner: str = ""
    ordering: str = "-quality"


ORDERINGS = {
    "-quality": [F("quality_score").desc(nulls_last=True), "owner__slug", "slug"],
    "quality": [F("quality_score").asc(nulls_last=True), "owner__slug", "slug"],
    "name": ["name", "owner__slug", "slug"],
    "-created": ["-created_at", "owner__slug", "slug"],
    "created": ["created_at", "owner__slug", "slug"],
}


def _index_holds_all(field_name: str, values: Iterable[str]) -> Q:
    """Rows whose `,a,b,` index holds every value, as one condition: a `.filter()` per value would clone the query
    once per value, each clone copying the conditions before it (quadratic time)."""
    return Q(*(Q(**{f"{field_name}__contains": f",{value.lower()},"}) for value in values))


def search_models(viewer: Viewer, filters: ModelFilters) -> QuerySet[CatalogModel]:
    """Visible models matching every given filter (tags and languages: all of them), in the asked order."""
    queryset = visible_models(viewer).filter(
        *(Q(search_document__contains=word) for word in filters.q.lower().split()),
        _index_holds_all("tags_index", filters.tags),
        _index_holds_all("languages_index", filters.languages),
    )
    exact = {
        "category": filters.category,
        "model_type": filters.model_type,
        "license": filters.license.lower(),
        "visibility": filters.visibility,
        "status": filters.status,
        "owner__slug": filters.owner,
    }
    queryset = queryset.filter(**{name: value for name, value in exact.items() if value})
    if filters.min_quality is not None:
        queryset = queryset.filter(quality_score__gte=filters.min_quality)
    if filters.commercial_use is not None:
        queryset = queryset.filter(commercial_use=filters.commercial_use)
    return (
        queryset.select_related("owner")
        .prefetch_related(versions_prefetch())
        .order_by(*ORDERINGS.get(filters.ordering, ORDERINGS["-quality"]))
    )


FACET_FIELDS = ("category", "model_type", "license", "visibility", "commercial_use")


def model_facets(queryset: QuerySet[CatalogModel]) -> dict[str, dict[str, int]]:
    """Counts of the matching models by category, type, license, visibility, commercial use, tag and language
    (a fixed number of queries, whatever the number of models)."""
    base = queryset.order_by().select_related(None).prefetch_related(None)
    facets: dict[str, dict[str, int]] = {}
    for name in FACET_FIELDS:
        rows = base.values(name).annotate(n=Count("id")).order_by(name)
        facets[name] = {_facet_key(row[name]): row["n"] for row in rows}
    tags: Counter[str] = Counter()
    languages: Counter[str] = Counter()
    for model_tags, model_languages in base.values_list("tags", "languages"):
        tags.update(set(model_tags or []))
        languages.update(set(model_languages or []))
    facets["tags"] = dict(sorted(tags.items(), key=lambda item: (-item[1], item[0]))[:50])
    facets["languages"] = dict(sorted(languages.items(), key=lambda item: (-item[1], item[0])))
    return facets


def _facet_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if value not in (None, "") else "(none)"


# --- Datasets, training runs, evaluations --------------------------------------------------------------------


def get_dataset(viewer: Viewer, reference: str) -> Dataset:
    """A visible dataset by id or handle (404 otherwise)."""
    queryset = visible_datasets(viewer).select_related("owner")
    parts = split_handle(reference)
    found = None
    if parts is not None:
        found = queryset.filter(owner__slug=parts[0], slug=parts[1]).first()
    elif _is_uuid(reference):
        found = queryset.filter(pk=reference).first()
    if found is None:
        raise NotFoundError("Dataset", reference)
    return found


def search_datasets(
    viewer: Viewer, *, owner: str = "", visibility: str = "", license: str = "", commercial_use: bool | None = None
) -> QuerySet[Dataset]:
    """Visible datasets matching every given filter, by handle."""
    queryset = visible_datasets(viewer).select_related("owner")
    exact = {"owner__slug": owner, "visibility": visibility, "license": (license or "").lower()}
    queryset = queryset.filter(**{name: value for name, value in exact.items() if value})
    if commercial_use is not None:
        queryset = queryset.filter(commercial_use=commercial_use)
    return queryset.order_by("owner__slug", "slug")


def list_training_runs(tenant: Tenant) -> QuerySet[TrainingRun]:
    return (
        TrainingRun.objects.filter(owner=tenant)
        .select_related("owner", "model_version__model__owner")
        .prefetch_related(Prefetch("datasets", queryset=Dataset.objects.select_related("owner")))
    )


def visible_evaluations(viewer: Viewer) -> QuerySet[Evaluation]:
    return Evaluation.objects.filter(model_version__model__in=visible_models(viewer)).select_related(
        "model_version__model__owner"
    )


def search_evaluations(
    viewer: Viewer, *, model: str = "", version: str = "", benchmark: str = "", status: str = ""
) -> QuerySet[Evaluation]:
    """Visible evaluations, of one model (by handle) and version when given, of a benchmark, in a status; newest
    first."""
    queryset = visible_evaluations(viewer)
    if model:
        parts = split_handle(model) or ("", "")
        queryset = queryset.filter(model_version__model__owner__slug=parts[0], model_version__model__slug=parts[1])
        if version:
            queryset = queryset.filter(model_version__version=version)
    if benchmark:
        queryset = queryset.filter(benchmark_name__iexact=benchmark)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "id")


def get_evaluation(viewer: Viewer, evaluation_id: Any) -> Evaluation:
    found = visible_evaluations(viewer).filter(pk=evaluation_id).first() if _is_uuid(str(evaluation_id)) else None
    if found is None:
        raise NotFoundError("Evaluation", evaluation_id)
    return found


def _is_uuid(text: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(text))
    except ValueError:
        return False
    return True


# --- Lineage -------------------------------------------------------------------------------------------------


def graph_of(tenant_id: Any) -> LineageGraph | None:
    return LineageGraph.objects.filter(owner_id=tenant_id).first()


def version_nodes(model: CatalogModel, versions: Sequence[ModelVersion] | None = None) -> list[LineageNode]:
    """The lineage nodes of the model's versions (all of them, or those given)."""
    ids = [str(v.pk) for v in (versions if versions is not None else model.versions.all())]
    return list(LineageNode.objects.filter(graph__owner_id=model.owner_id, kind=NodeKind.MODEL_VERSION, ref__in=ids))


HIDDEN_LABEL = "(not visible to you)"


def hidden_nodes(viewer: Viewer, owner_id: Any, nodes: Sequence[LineageNode]) -> set[int]:
    """Nodes of the owner's graph the viewer may not see the object of: versions and evaluations of models it may
    not see, datasets it may not see, and every training run (internal to the owner). They stay in the picture as
    anonymous nodes, so the graph keeps its shape without revealing names. At most three queries."""
    if viewer.everything or (viewer.tenant is not None and viewer.tenant.pk == owner_id):
        return set()
    refs: dict[str, list[str]] = {}
    for node in nodes:
        refs.setdefault(node.kind, []).append(node.ref)
    models = visible_models(viewer)
    shown: set[str] = set()
    if refs.get(NodeKind.MODEL_VERSION):
        ids = [r for r in refs[NodeKind.MODEL_VERSION] if _is_uuid(r)]
        shown |= {
            str(pk) for pk in ModelVersion.objects.filter(pk__in=ids, model__in=models).values_list("pk", flat=True)
        }
    if refs.get(NodeKind.EVALUATION):
        ids = [r for r in refs[NodeKind.EVALUATION] if _is_uuid(r)]
        shown |= {
            str(pk)
            for pk in Evaluation.objects.filter(pk__in=ids, model_version__model__in=models).values_list(
                "pk", flat=True
            )
        }
    if refs.get(NodeKind.DATASET):
        shown |= set(
            visible_datasets(viewer).filter(sharing_id__in=refs[NodeKind.DATASET]).values_list("sharing_id", flat=True)
        )
    return {n.id for n in nodes if n.kind != NodeKind.BASE_MODEL and n.ref not in shown}


def node_payload(
    node: LineageNode, place: lineage.Placed | None, start_ids: set[int], hidden: bool = False
) -> dict[str, Any]:
    up, down = getattr(node, "up_depth", None), getattr(node, "down_depth", None)
    if node.id in start_ids:
        relation, depth = "self", 0
    elif up is not None:
        relation, depth = "ancestor", int(up)
    else:
        relation, depth = "descendant", int(down or 0)
    return {
        "id": str(node.uid),
        "kind": node.kind,
        "label": HIDDEN_LABEL if hidden else node.label,
        "ref": "" if hidden else node.ref,
        "relation": relation,
        "depth": depth,
        "layer": place.layer if place else 0,
        "order": place.order if place else 0,
        "x": place.x if place else 0,
        "y": place.y if place else 0,
    }


def edge_payload(edge: LineageEdge, uids: dict[int, str], drawing: lineage.Layout) -> dict[str, Any]:
    return {
        "source": uids[edge.source_id],
        "target": uids[edge.target_id],
        "type": edge.edge_type,
        "points": [list(point) for point in drawing.routes.get(edge.pk, [])],
    }


def model_lineage(
    model: CatalogModel, *, depth: int, version: str | None = None, viewer: Viewer | None = None
) -> dict[str, Any]:
    """Ancestors and descendants of the model's versions (or one version) within `depth`, laid out for drawing:
    a fixed number of queries whatever the depth. Nodes the viewer may not see are anonymised (`hidden_nodes`);
    without a viewer, everything is shown (the owner's admin pages)."""
    versions = [get_version(model, version)] if version else list(model.versions.all())
    starts = version_nodes(model, versions)
    sub = lineage.subgraph([n.id for n in starts], "both", depth)
    hidden = hidden_nodes(viewer, model.owner_id, sub.nodes) if viewer is not None else set()
    for node in sub.nodes:
        if node.id in hidden:
            node.label = HIDDEN_LABEL
    drawing = lineage.layout(sub.nodes, sub.edges)
    start_ids = set(sub.start_ids)
    uids = {n.id: str(n.uid) for n in sub.nodes}
    return {
        "model": model.handle,
        "version": version,
        "depth": depth,
        "width": drawing.width,
        "height": drawing.height,
        "nodes": [node_payload(n, drawing.places.get(n.id), start_ids, n.id in hidden) for n in sub.nodes],
        "edges": [edge_payload(e, uids, drawing) for e in sub.edges],
        "subgraph": sub,
        "layout": drawing,
    }


@dataclass
class LineageReport:
    """What `validate_lineage` found in a tenant's graph."""

    nodes: int
    edges: int
    orphans: list[LineageNode]
    dangling_nodes: list[LineageNode]
    dangling_edges: list[LineageEdge]
    invalid_edges: list[tuple[LineageEdge, str]]
    cycle_nodes: list[LineageNode]

    @property
    def ok(self) -> bool:
        return not (self.dangling_nodes or self.dangling_edges or self.invalid_edges or self.cycle_nodes)

    def as_dict(self) -> dict[str, Any]:
        def node(n: LineageNode) -> dict[str, str]:
            return {"id": str(n.uid), "kind": n.kind, "ref": n.ref, "label": n.label}

        def edge(e: LineageEdge) -> dict[str, Any]:
            return {"id": e.pk, "source": str(e.source.uid), "target": str(e.target.uid), "type": e.edge_type}

        return {
            "ok": self.ok,
            "nodes": self.nodes,
            "edges": self.edges,
            "orphans": [node(n) for n in self.orphans],
            "dangling_nodes": [node(n) for n in self.dangling_nodes],
            "dangling_edges": [edge(e) for e in self.dangling_edges],
            "invalid_edges": [{**edge(e), "reason": reason} for e, reason in self.invalid_edges],
            "cycle_nodes": [node(n) for n in self.cycle_nodes],
        }


def validate_lineage(tenant: Tenant) -> LineageReport:
    """Check a tenant's graph: orphans (nodes without edges), dangling nodes (their object is gone or belongs to
    another tenant) and the edges touching them, edges breaking the kind rules, and cycles (only possible through
    writes that bypassed the services). A fixed number of queries."""
    nodes = list(LineageNode.objects.filter(graph__owner=tenant))
    edges = list(LineageEdge.objects.filter(graph__owner=tenant).select_related("source", "target"))
    by_kind: dict[str, set[str]] = {}
    for n in nodes:
        by_kind.setdefault(n.kind, set()).add(n.ref)
    existing: dict[str, set[str]] = {
        NodeKind.MODEL_VERSION: _ids(ModelVersion.objects.filter(model__owner=tenant), by_kind, NodeKind.MODEL_VERSION),
        NodeKind.DATASET: _ids(Dataset.objects.filter(owner=tenant), by_kind, NodeKind.DATASET),
        NodeKind.TRAINING_RUN: _ids(TrainingRun.objects.filter(owner=tenant), by_kind, NodeKind.TRAINING_RUN),
        NodeKind.EVALUATION: _ids(
            Evaluation.objects.filter(model_version__model__owner=tenant), by_kind, NodeKind.EVALUATION
        ),
    }
    dangling = [n for n in nodes if n.kind in existing and n.ref not in existing[n.kind]]
    dangling_ids = {n.id for n in dangling}
    touched = {e.source_id for e in edges} | {e.target_id for e in edges}
    invalid = []
    for e in edges:
        reason = lineage.edge_rule_error(e.edge_type, e.source.kind, e.target.kind)
        if reason:
            invalid.append((e, reason))
    on_cycles = set(lineage.find_cycle([n.id for n in nodes], [(e.source_id, e.target_id) for e in edges]))
    return LineageReport(
        nodes=len(nodes),
        edges=len(edges),
        orphans=[n for n in nodes if n.id not in touched],
        dangling_nodes=dangling,
        dangling_edges=[e for e in edges if e.source_id in dangling_ids or e.target_id in dangling_ids],
        invalid_edges=invalid,
        cycle_nodes=[n for n in nodes if n.id in on_cycles],
    )


def _ids(queryset: QuerySet[Any], by_kind: dict[str, set[str]], kind: str) -> set[str]:
    wanted = [ref for ref in by_kind.get(kind, ()) if _is_uuid(ref)]
    return {str(pk) for pk in queryset.filter(pk__in=wanted).values_list("pk", flat=True)} if wanted else set()


# --- Compliance ----------------------------------------------------------------------------------------------


def model_datasets(model: CatalogModel) -> list[Dataset]:
    """The datasets in the lineage of the model's versions (trained on them directly or through runs and
    preprocessing), up to the maximum lineage depth."""
    starts = [n.id for n in version_nodes(model)]
    reached = lineage.walk(starts, lineage.UP, int(catalog_settings.LINEAGE_MAX_DEPTH))
    refs = LineageNode.objects.filter(pk__in=list(reached), kind=NodeKind.DATASET).values_list("ref", flat=True)
    return list(Dataset.objects.filter(owner_id=model.owner_id, sharing_id__in=list(refs)).select_related("owner"))


def model_compliance(model: CatalogModel, viewer: Viewer | None = None) -> ComplianceReport:
    """The compliance report of a model over the datasets of its lineage. Datasets the viewer may not see are
    named "private dataset 1", "private dataset 2"... (their findings stay); without a viewer all are named."""
    datasets = model_datasets(model)
    shown: set[str] = {d.sharing_id for d in datasets}
    if viewer is not None and not viewer.everything and (viewer.tenant is None or viewer.tenant.pk != model.owner_id):
        shown = set(visible_datasets(viewer).filter(sharing_id__in=list(shown)).values_list("sharing_id", flat=True))
    labelled, hidden = [], 0
    for dataset in datasets:
        if dataset.sharing_id in shown:
            labelled.append((dataset.handle, dataset))
        else:
            hidden += 1
            labelled.append((f"private dataset {hidden}", dataset))
    return check_compliance(model, labelled, model.handle)


# --- Leaderboard and comparison ------------------------------------------------------------------------------


def _rank(rows: list[dict[str, Any]], score_key: str) -> list[dict[str, Any]]:
    """Order by score (highest first), then handle; equal scores share a rank (1, 2, 2, 4)."""
    rows.sort(key=lambda row: (-row[score_key], row["model"]))
    previous: Any = None
    for position, row in enumerate(rows, start=1):
        if row[score_key] != previous:
            rank, previous = position, row[score_key]
        row["rank"] = rank
    return rows


def leaderboard(
    viewer: Viewer, *, benchmark: str = "", benchmark_version: str = "", category: str = ""
) -> list[dict[str, Any]]:
    """Visible models ranked by a benchmark's score (the best completed result among each model's versions that did
    not fail), or by quality score without a benchmark. One query (plus none per row)."""
    models = visible_models(viewer)
    if category:
        models = models.filter(category=category)
    if not benchmark:
        rows = [
            {
                "model": f"{owner}--{slug}",
                "name": name,
                "owner": owner,
                "version": (breakdown or {}).get("version"),
                "score": score,
                "benchmark": None,
                "benchmark_version": None,
                "evaluated_at": None,
            }
            for owner, slug, name, score, breakdown in models.filter(quality_score__isnull=False).values_list(
                "owner__slug", "slug", "name", "quality_score", "quality_breakdown"
            )
        ]
        return _rank(rows, "score")
    evaluations = Evaluation.objects.filter(
        model_version__model__in=models,
        benchmark_name__iexact=benchmark,
        status=EvaluationStatus.COMPLETED,
        score__isnull=False,
    ).exclude(model_version__status=VersionStatus.FAILED)
    if benchmark_version:
        evaluations = evaluations.filter(benchmark_version=benchmark_version)
    best = (
        evaluations.annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("model_version__model_id")],
                order_by=[F("score").desc(), F("completed_at").asc(), F("id").asc()],
            )
        )
        .filter(position=1)
        .values(
            "model_version__model__owner__slug",
            "model_version__model__slug",
            "model_version__model__name",
            "model_version__version",
            "score",
            "benchmark_name",
            "benchmark_version",
            "completed_at",
        )
    )
    rows = [
        {
            "model": f"{row['model_version__model__owner__slug']}--{row['model_version__model__slug']}",
            "name": row["model_version__model__name"],
            "owner": row["model_version__model__owner__slug"],
            "version": row["model_version__version"],
            "score": row["score"],
            "benchmark": row["benchmark_name"],
            "benchmark_version": row["benchmark_version"],
            "evaluated_at": row["completed_at"],
        }
        for row in best
    ]
    return _rank(rows, "score")


def _delta(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return Decimal(str(b)) - Decimal(str(a))
    return b - a


PERFORMANCE_FIELDS = ("p50_latency_ms", "p95_latency_ms", "throughput_tokens_per_s")


def latest_results(evaluations: Iterable[Evaluation]) -> dict[tuple[str, str], Evaluation]:
    """The most recent completed result per (benchmark name, benchmark version)."""
    found: dict[tuple[str, str], Evaluation] = {}
    for evaluation in sorted(evaluations, key=lambda e: (e.completed_at or e.created_at, str(e.pk))):
        if evaluation.status == EvaluationStatus.COMPLETED and evaluation.score is not None:
            found[(evaluation.benchmark_name, evaluation.benchmark_version)] = evaluation
    return found


def compare_versions(model: CatalogModel, a: str, b: str) -> dict[str, Any]:
    """Size, performance, quality and per-benchmark deltas from version `a` to version `b` (b − a)."""
    errors = {}
    for name, value in (("a", a), ("b", b)):
        if not value:
            errors[name] = ["Name a version of the model, e.g. 1.0.0."]
    if errors:
        raise ValidationError(fields=errors)
    first, second = get_version(model, a), get_version(model, b)
    evaluations = Evaluation.objects.filter(model_version__in=[first, second])
    per_version = {
        first.pk: latest_results(e for e in evaluations if e.model_version_id == first.pk),
        second.pk: latest_results(e for e in evaluations if e.model_version_id == second.pk),
    }
    benchmarks = []
    for key in sorted(set(per_version[first.pk]) | set(per_version[second.pk])):
        score_a = per_version[first.pk].get(key)
        score_b = per_version[second.pk].get(key)
        value_a = score_a.score if score_a else None
        value_b = score_b.score if score_b else None
        benchmarks.append(
            {
                "benchmark": key[0],
                "benchmark_version": key[1],
                "a": value_a,
                "b": value_b,
                "delta": _delta(value_a, value_b),
            }
        )

    def facts(version: ModelVersion) -> dict[str, Any]:
        return {
            "version": version.version,
            "status": version.status,
            "size_bytes": version.size_bytes,
            "parameter_count": version.parameter_count,
            **{name: getattr(version, name) for name in PERFORMANCE_FIELDS},
            "quality_score": version.quality_score,
        }

    facts_a, facts_b = facts(first), facts(second)
    delta_fields = ("size_bytes", "parameter_count", *PERFORMANCE_FIELDS, "quality_score")
    return {
        "model": model.handle,
        "a": facts_a,
        "b": facts_b,
        "deltas": {name: _delta(facts_a[name], facts_b[name]) for name in delta_fields},
        "benchmarks": benchmarks,
    }
