"""Plain result types of the catalog's read models: lineage drawings and leaderboard rows (dicts from the
selectors, as the REST API serializes them)."""

from __future__ import annotations

import graphene

from llm_infra_django.graphql import CountedConnection
from llm_infra_django.graphql import Decimal as GqlDecimal


class LeaderboardRow(graphene.ObjectType):
    """A visible model's place on a leaderboard."""

    rank = graphene.Int(required=True, description="Equal scores share a rank (1, 2, 2, 4), listed by handle.")
    model = graphene.String(required=True, description="The model's handle.")
    name = graphene.String(required=True)
    owner = graphene.String(required=True)
    version = graphene.String(description="The version the score belongs to.")
    score = GqlDecimal(required=True)
    benchmark = graphene.String()
    benchmark_version = graphene.String()
    evaluated_at = graphene.DateTime()


class ModelLineageNode(graphene.ObjectType):
    """A node of a model's lineage, placed for drawing (anonymous when the caller may not see its object)."""

    id = graphene.ID(required=True)
    kind = graphene.String(required=True)
    label = graphene.String(required=True)
    ref = graphene.String(required=True, description="Id of the object (the name for base models).")
    relation = graphene.String(required=True, description="self, ancestor or descendant.")
    depth = graphene.Int(required=True, description="Edges away from the model's versions.")
    layer = graphene.Int(required=True)
    order = graphene.Int(required=True)
    x = graphene.Int(required=True)
    y = graphene.Int(required=True)


class ModelLineageEdge(graphene.ObjectType):
    """ "source <type> target" (the derived node first)."""

    source = graphene.ID(required=True)
    target = graphene.ID(required=True)
    type = graphene.String(required=True)
    points = graphene.List(
        graphene.NonNull(graphene.List(graphene.NonNull(graphene.Int))),
        required=True,
        description="Bends [x, y] of the drawn edge.",
    )


class ModelLineage(graphene.ObjectType):
    """Ancestors and descendants of a model's versions (or of one) within `depth` edges."""

    model = graphene.String(required=True)
    version = graphene.String()
    depth = graphene.Int(required=True)
    width = graphene.Int(required=True)
    height = graphene.Int(required=True)
    nodes = graphene.List(graphene.NonNull(ModelLineageNode), required=True)
    edges = graphene.List(graphene.NonNull(ModelLineageEdge), required=True)


class LeaderboardConnection(CountedConnection):
    class Meta:
        node = LeaderboardRow
