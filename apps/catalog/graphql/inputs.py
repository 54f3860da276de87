"""Input types of the catalog mutations: the REST request bodies' fields (in camel case), validated by the same
catalog services; a field left out is left unchanged, an explicit null clears it where the REST API allows."""

from __future__ import annotations

import graphene
from graphene.types.generic import GenericScalar

from llm_infra_django.graphql import Decimal as GqlDecimal

Strings = graphene.List(graphene.NonNull(graphene.String))


class ModelFieldsInput(graphene.InputObjectType):
    name = graphene.String()
    description = graphene.String()
    base_model_name = graphene.String()
    base_model_provider = graphene.String()
    model_type = graphene.String(description="fine_tuned, adapter, full_model or merged.")
    architecture = graphene.String()
    category = graphene.String()
    tags = Strings
    languages = graphene.List(graphene.NonNull(graphene.String), description="ISO 639-1 codes.")
    license = graphene.String(description="e.g. apache-2.0")
    commercial_use = graphene.Boolean(description="Defaults from a known license.")
    visibility = graphene.String(description="private, tenant, marketplace or public.")


class CatalogModelCreateInput(ModelFieldsInput):
    slug = graphene.String(required=True, description="Unique within the owner; lower-case, single hyphens.")
    name = graphene.String(required=True)


class CatalogModelUpdateInput(ModelFieldsInput):
    status = graphene.String(
        description="draft → evaluating → published (needs a ready version) → deprecated → archived (final)."
    )


class ModelArtifactInput(graphene.InputObjectType):
    uri = graphene.String(required=True, description="s3://, gs://, az://, https://, hf://, oci:// or file:// URI.")
    format = graphene.String(required=True)
    size_bytes = graphene.BigInt(required=True)
    sha256 = graphene.String(required=True, description="64 hexadecimal characters.")


class ModelVersionFieldsInput(graphene.InputObjectType):
    artifacts = graphene.List(graphene.NonNull(ModelArtifactInput), description="Changeable only while building.")
    parameter_count = graphene.BigInt()
    changelog = graphene.String()
    breaking = graphene.Boolean()
    status = graphene.String(description="building → evaluating → ready (needs an artifact) → deprecated.")
    p50_latency_ms = graphene.Float()
    p95_latency_ms = graphene.Float()
    throughput_tokens_per_s = graphene.Float()
    served_by = graphene.List(graphene.NonNull(graphene.ID), description="Ids of the owner's service versions.")


class ModelVersionCreateInput(ModelVersionFieldsInput):
    version = graphene.String(required=True, description="SemVer, greater than every existing version.")


class LineageNodeRefInput(graphene.InputObjectType):
    kind = graphene.String(required=True, description="base_model, dataset, training_run, model_version, evaluation.")
    ref = graphene.String(
        required=True,
        description="Id of the owner's object (a version also as `handle@version`, a dataset as its handle); the "
        "name of a base model.",
    )


class LineageEdgeInput(graphene.InputObjectType):
    source = graphene.Field(LineageNodeRefInput, required=True, description="The derived node.")
    target = graphene.Field(LineageNodeRefInput, required=True, description="What it derives from.")
    type = graphene.String(required=True, description="derived_from, trained_on, evaluated_by, merged_from, ...")


class DatasetSourceInput(graphene.InputObjectType):
    type = graphene.String(required=True)
    uri = graphene.String()
    description = graphene.String()


class DatasetFieldsInput(graphene.InputObjectType):
    name = graphene.String()
    description = graphene.String()
    sources = graphene.List(graphene.NonNull(DatasetSourceInput))
    license = graphene.String()
    commercial_use = graphene.Boolean()
    derivatives = graphene.Boolean()
    redistribution = graphene.Boolean()
    pii_detected = graphene.Boolean()
    pii_removed = graphene.Boolean()
    contains_health_data = graphene.Boolean()
    certifications = Strings
    checksum_sha256 = graphene.String()
    size_bytes = graphene.BigInt()
    record_count = graphene.BigInt()
    visibility = graphene.String()


class DatasetCreateInput(DatasetFieldsInput):
    slug = graphene.String(required=True)
    name = graphene.String(required=True)


class TrainingRunCreateInput(graphene.InputObjectType):
    name = graphene.String(required=True)
    datasets = graphene.List(graphene.NonNull(graphene.String), description="Ids or handles.")
    model_version = graphene.String(description="Id or `handle@version` of the version it produced.")
    hyperparameters = GenericScalar()
    infrastructure = GenericScalar()
    status = graphene.String()
    started_at = graphene.DateTime()
    finished_at = graphene.DateTime()
    duration_seconds = graphene.Float()
    cost_usd = GqlDecimal()


class EvaluationFieldsInput(graphene.InputObjectType):
    score = graphene.Float(description="0-100 (a percentage, never a 0-1 fraction).")
    scores = GenericScalar(description="Raw metrics, e.g. {acc: 71.2}.")
    status = graphene.String(description="completed (default with a score) or failed (with `error`).")
    error = graphene.String()


class EvaluationCreateInput(EvaluationFieldsInput):
    model = graphene.String(required=True, description="Handle of the model (`owner--slug`).")
    version = graphene.String(required=True)
    benchmark = graphene.String(required=True)
    name = graphene.String(description="Custom benchmarks only.")
    benchmark_version = graphene.String()
    dimension = graphene.String(description="Custom benchmarks only (default accuracy).")
    run = graphene.Boolean(description="Ask the configured evaluator to run it (no score given).")
