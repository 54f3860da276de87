"""Data of a private cluster, made through the project's own services in a process set up on its settings
(`Project.call("tests.support.cluster_world:...")`): a provider publishing OpenAI-compatible services on a local
upstream, a consumer tenant, API keys."""

from __future__ import annotations

from typing import Any

SERVICE_DEFINITION: dict[str, Any] = {
    "name": "Local Chat",
    "description": "A local OpenAI-compatible upstream for fault tests.",
    "category": "chat",
    "protocol": "openai",
    "upstream_model": "m",
    "pricing_model": "per_token",
    # 7 prompt and 8 completion tokens (the local upstream's usage) cost a whole number of micro-dollars.
    "price_input_per_mtok": "1000",
    "price_output_per_mtok": "2000",
    "data_residency": ["US"],
    "context_length": 8192,
}


def _tenant(slug: str, **extra: Any) -> Any:
    from django.contrib.auth import get_user_model

    from apps.tenancy.models import Membership, Role, Tenant, TenantStatus, Tier

    tenant, created = Tenant.objects.get_or_create(
        slug=slug,
        defaults={"name": slug.title(), "tier": Tier.PROFESSIONAL, "status": TenantStatus.ACTIVE, **extra},
    )
    owner, _ = get_user_model().objects.get_or_create(username=f"{slug}-owner")
    if created:
        Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    tenant.owner = owner
    return tenant


def publish(*, upstream_url: str, slug: str, sla_timeout_ms: int = 30_000) -> dict[str, Any]:
    """Publish `acme/<slug>` on the upstream (the publishing pipeline runs, eagerly); returns its ids."""
    from apps.publishing import services as publishing

    provider = _tenant("acme", trusted_publisher=True)
    values = {**SERVICE_DEFINITION, "endpoint_url": upstream_url, "sla_timeout_ms": sla_timeout_ms}
    service, version, _ = publishing.publish_service(
        publisher=provider, actor=provider.owner, slug=slug, version="1.0.0", values=values
    )
    version.refresh_from_db()
    if version.status != "active":
        raise RuntimeError(f"acme/{slug} is {version.status}, not active")
    return {"model": f"acme/{slug}", "service_id": str(service.pk), "version_id": str(version.pk)}


def make_key(*, tenant: str = "globex", scopes: list[str] | None = None, **limits: Any) -> dict[str, Any]:
    """A key of the consumer tenant `tenant` with the given limits; returns its secret and ids."""
    from apps.consumption.services import create_api_key

    consumer = _tenant(tenant)
    key, secret = create_api_key(
        tenant=consumer, actor=consumer.owner, name="faults", scopes=scopes or ["consume", "read"], **limits
    )
    return {"secret": secret, "key_id": str(key.pk), "tenant_id": str(consumer.pk)}


def build(*, services: list[dict[str, Any]], keys: list[dict[str, Any]]) -> dict[str, Any]:
    """Several services (`publish` arguments each) and keys (`make_key` arguments each) in one process."""
    return {
        "services": {spec["slug"]: publish(**spec) for spec in services},
        "keys": [make_key(**spec) for spec in keys],
    }
