"""factory_boy factories for the catalog (rows written directly; use the services where lineage matters)."""

from __future__ import annotations

import hashlib

import factory

from apps.catalog.models import CatalogModel, Dataset, ModelStatus, ModelVersion, VersionStatus
from apps.tenancy.models import Visibility
from tests.apps.tenancy.factories import TenantFactory


def sha256_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def artifact(name: str = "model.safetensors", size: int = 1_000, **overrides: object) -> dict[str, object]:
    """A valid artifact entry."""
    return {
        "uri": f"s3://models/{name}",
        "format": "safetensors",
        "size_bytes": size,
        "sha256": sha256_of(name),
        **overrides,
    }


class CatalogModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CatalogModel

    owner = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Model {n}")
    slug = factory.Sequence(lambda n: f"model-{n}")
    category = "chat"
    license = "apache-2.0"
    commercial_use = True
    visibility = Visibility.PUBLIC
    status = ModelStatus.PUBLISHED


class ModelVersionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelVersion

    model = factory.SubFactory(CatalogModelFactory)
    version = factory.Sequence(lambda n: f"1.{n}.0")
    major = factory.LazyAttribute(lambda v: int(v.version.split(".")[0]))
    minor = factory.LazyAttribute(lambda v: int(v.version.split(".")[1]))
    patch = factory.LazyAttribute(lambda v: int(v.version.split(".")[2].split("-")[0]))
    artifacts = factory.LazyFunction(lambda: [artifact()])
    status = VersionStatus.READY


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    owner = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"Dataset {n}")
    slug = factory.Sequence(lambda n: f"dataset-{n}")
    license = "cc-by-4.0"
    commercial_use = True
    derivatives = True
    redistribution = True
