"""A populated marketplace for N+1 tests and benchmarks: publishers with services of several versions, each served
version linked to a public catalog model version with evaluations, and a consumer who may see all of it."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone

from apps.catalog.models import CatalogModel, Evaluation, ModelStatus, ModelVersion, ServedBy, VersionStatus
from apps.publishing.models import Service, ServiceVersion, Status
from apps.tenancy.models import Membership, Role, Tenant


@dataclass
class World:
    consumer: Any
    consumer_tenant: Tenant
    services: list[Service]


def build(services: int, *, versions: int = 2, evaluations: int = 2, publishers: int = 5, prefix: str = "w") -> World:
    """`services` active services spread over `publishers` tenants, `versions` active versions each, every version
    served by its own model version (of one public model per service) with `evaluations` evaluations."""
    now = timezone.now()
    tenants = [
        Tenant.objects.create(name=f"Publisher {i}", slug=f"{prefix}-pub-{i}", trusted_publisher=True)
        for i in range(publishers)
    ]
    consumer_tenant = Tenant.objects.create(name="Consumer", slug=f"{prefix}-consumer")
    consumer = get_user_model().objects.create_user(username=f"{prefix}-consumer", password="x")
    Membership.objects.create(tenant=consumer_tenant, user=consumer, role=Role.OWNER)
    created = []
    for index in range(services):
        publisher = tenants[index % publishers]
        service = Service.objects.create(publisher=publisher, slug=f"svc-{index}")
        model = CatalogModel.objects.create(
            owner=publisher,
            name=f"Model {index}",
            slug=f"model-{index}",
            category="chat",
            license="apache-2.0",
            commercial_use=True,
            visibility="public",
            status=ModelStatus.PUBLISHED,
        )
        for minor in range(versions):
            version = ServiceVersion(
                service=service,
                version=f"1.{minor}.0",
                major=1,
                minor=minor,
                patch=0,
                status=Status.ACTIVE,
                published_at=now,
                name=f"Service {index}",
                description="A service of the N+1 world.",
                category="chat",
                tags=["demo"],
                protocol="echo",
                upstream_model="echo-1",
                pricing_model="per_token",
                price_input_per_mtok=Decimal("1"),
                price_output_per_mtok=Decimal("2"),
                compliance_level="public",
                data_residency=["US"],
            )
            version.save()
            model_version = ModelVersion.objects.create(
                model=model,
                version=f"1.{minor}.0",
                major=1,
                minor=minor,
                patch=0,
                status=VersionStatus.READY,
                artifacts=[],
            )
            ServedBy.objects.create(model_version=model_version, service_version=version)
            Evaluation.objects.bulk_create(
                [
                    Evaluation(
                        model_version=model_version,
                        benchmark="custom",
                        benchmark_name=f"bench-{e}",
                        dimension="accuracy",
                        score=Decimal("50") + e,
                        status="completed",
                    )
                    for e in range(evaluations)
                ]
            )
        created.append(service)
    return World(consumer=consumer, consumer_tenant=consumer_tenant, services=created)
