"""Reads of the publishing app: model-id routes for the proxy (cached) and service lookups."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Exists, OuterRef, Q, QuerySet

from apps.publishing.conf import publishing_settings
from apps.publishing.lifecycle import SERVABLE
from apps.publishing.models import Service, ServiceVersion, Status
from llm_infra_django.errors import NotFoundError, ValidationError


@dataclass(frozen=True)
class Route:
    """Everything the proxy needs to call and bill one service version (the credential stays encrypted)."""

    model_id: str
    version_id: str
    service_id: str
    publisher_id: str
    publisher_slug: str
    service_slug: str
    version: str
    status: str
    protocol: str
    endpoint_url: str
    upstream_model: str
    auth_kind: str
    upstream_secret_encrypted: str
    pricing_model: str
    price_input_per_mtok: Decimal | None
    price_output_per_mtok: Decimal | None
    price_cached_input_per_mtok: Decimal | None
    price_per_request: Decimal | None
    sla_timeout_ms: int
    context_length: int
    category: str
    data_residency: tuple[str, ...] = ()
    compliance_level: str = ""
    parameters: frozenset[str] = frozenset()  # the request parameters its capabilities declare

    @property
    def offer_id(self) -> str:
        """`<publisher>/<service>@<version>`: the offer this route serves, as answers name it."""
        return f"{self.publisher_slug}/{self.service_slug}@{self.version}"

    def as_cache(self) -> dict[str, Any]:
        data = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(self).items()}
        data["data_residency"], data["parameters"] = list(self.data_residency), sorted(self.parameters)
        return data

    @classmethod
    def from_cache(cls, data: dict[str, Any]) -> Route:
        prices = ("price_input_per_mtok", "price_output_per_mtok", "price_cached_input_per_mtok", "price_per_request")
        values = {k: (Decimal(v) if k in prices and v is not None else v) for k, v in data.items()}
        values["data_residency"] = tuple(values.get("data_residency") or ())
        values["parameters"] = frozenset(values.get("parameters") or ())
        return cls(**values)

    @classmethod
    def of(cls, version: ServiceVersion, model_id: str) -> Route:
        service = version.service
        return cls(
            model_id=model_id,
            version_id=str(version.pk),
            service_id=str(service.pk),
            publisher_id=str(service.publisher_id),
            publisher_slug=service.publisher.slug,
            service_slug=service.slug,
            version=version.version,
            status=version.status,
            protocol=version.protocol,
            endpoint_url=version.endpoint_url,
            upstream_model=version.upstream_model,
            auth_kind=version.auth_kind,
            upstream_secret_encrypted=version.upstream_secret_encrypted,
            pricing_model=version.pricing_model,
            price_input_per_mtok=version.price_input_per_mtok,
            price_output_per_mtok=version.price_output_per_mtok,
            price_cached_input_per_mtok=version.price_cached_input_per_mtok,
            price_per_request=version.price_per_request,
            sla_timeout_ms=version.sla_timeout_ms,
            context_length=version.context_length,
            category=version.category,
            data_residency=tuple(str(code) for code in version.data_residency or ()),
            compliance_level=version.compliance_level,
            parameters=declared_parameters(version.capabilities),
        )


def declared_parameters(capabilities: Any) -> frozenset[str]:
    """The request parameters a version's capabilities declare: the keys of each capability's `parameters` (or of
    its JSON schema's `properties`)."""
    names: set[str] = set()
    for capability in capabilities or []:
        parameters = capability.get("parameters") if isinstance(capability, dict) else None
        if isinstance(parameters, dict):
            properties = parameters.get("properties")
            names.update(properties if isinstance(properties, dict) else parameters)
    return frozenset(str(name) for name in names)


def split_model_id(model_id: str) -> tuple[str, str, str | None]:
    """`publisher/service[@version]` → (publisher, service, version or None)."""
    if not isinstance(model_id, str) or model_id.count("/") != 1:
        raise ValidationError(
            fields={"model": ["Use a model id like 'publisher/service' or 'publisher/service@1.2.0'."]}
        )
    path, _, version = model_id.partition("@")
    publisher, service = path.split("/")
    if not publisher or not service or (model_id.endswith("@")):
        raise ValidationError(fields={"model": [f"{model_id!r} is not a valid model id."]})
    return publisher, service, version or None


def route_cache_key(model_id: str) -> str:
    return f"publishing:route:{model_id}"


def latest_active_filter() -> Exists:
    """True for a version when no greater *active* version of its service exists."""
    return Exists(_greater_versions().filter(status=Status.ACTIVE))


def _greater_versions() -> QuerySet[ServiceVersion]:
    return ServiceVersion.objects.filter(service=OuterRef("service")).filter(
        Q(major__gt=OuterRef("major"))
        | Q(major=OuterRef("major"), minor__gt=OuterRef("minor"))
        | Q(major=OuterRef("major"), minor=OuterRef("minor"), patch__gt=OuterRef("patch"))
    )


def latest_any_filter() -> Exists:
    """True for a version when its service has a greater version in any status."""
    return Exists(_greater_versions())


def resolve_version(model_id: str) -> ServiceVersion:
    """The version a model id names: the latest active one, or the pinned one while it can be served."""
    publisher, service, version = split_model_id(model_id)
    queryset = ServiceVersion.objects.select_related("service__publisher").filter(
        service__publisher__slug=publisher, service__slug=service
    )
    if version is None:
        found = queryset.filter(status=Status.ACTIVE).order_by("-major", "-minor", "-patch").first()
    else:
        found = queryset.filter(version=version, status__in=SERVABLE).first()
    if found is None:
        raise NotFoundError("Model", model_id)
    return found


@dataclass(frozen=True)
class Unavailable:
    """The version a model id names while it cannot be served (the service exists), and that version's status."""

    model_id: str
    service_id: str
    publisher_id: str
    version: str
    status: str


def get_unavailable(model_id: str) -> Unavailable | None:
    """For a model id without a route: the pinned version, or the service's greatest version, in whatever status it
    is; None when no such service (or pinned version) exists."""
    publisher, service, version = split_model_id(model_id)
    queryset = ServiceVersion.objects.filter(service__publisher__slug=publisher, service__slug=service)
    if version is not None:
        queryset = queryset.filter(version=version)
    found = queryset.select_related("service").order_by("-major", "-minor", "-patch").first()
    if found is None:
        return None
    return Unavailable(
        model_id=model_id,
        service_id=str(found.service_id),
        publisher_id=str(found.service.publisher_id),
        version=found.version,
        status=found.status,
    )


def get_route(model_id: str) -> Route:
    """The cached route of a model id (invalidated whenever a version of the service changes status)."""
    key = route_cache_key(model_id)
    cached = cache.get(key)
    if cached is not None:
        return Route.from_cache(cached)
    route = Route.of(resolve_version(model_id), model_id)
    cache.set(key, route.as_cache(), publishing_settings.ROUTE_CACHE_SECONDS)
    return route


def get_route_of_version(version_id: str) -> Route | None:
    """The cached route of one service version by its id (an offer of a catalog model), pinned to that version;
    None when no such version exists."""
    key = route_cache_key(f"version:{version_id}")
    cached = cache.get(key)
    if cached is not None:
        return Route.from_cache(cached)
    version = ServiceVersion.objects.select_related("service__publisher").filter(pk=version_id).first()
    if version is None:
        return None
    route = Route.of(version, f"{version.service}@{version.version}")
    cache.set(key, route.as_cache(), publishing_settings.ROUTE_CACHE_SECONDS)
    return route


def invalidate_routes(version: ServiceVersion) -> None:
    """Drop the cached routes of the version's service (unpinned), of this version (pinned), and by its id."""
    base = str(version.service)
    keys = [
        route_cache_key(base),
        route_cache_key(f"{base}@{version.version}"),
        route_cache_key(f"version:{version.pk}"),
    ]
    cache.delete_many(keys)


def get_service(service_id: Any) -> Service:
    service = Service.objects.select_related("publisher").filter(pk=service_id).first()
    if service is None:
        raise NotFoundError("Service", service_id)
    return service


def latest_version(service: Service, *, include_retired: bool = False) -> ServiceVersion | None:
    queryset = service.versions.all()
    if not include_retired:
        queryset = queryset.exclude(status=Status.RETIRED)
    return queryset.order_by("-major", "-minor", "-patch").first()


def count_services_published(tenant: Any) -> int:
    """Services of the tenant with at least one version that is not retired (the services_published quota)."""
    live = [status for status in Status.values if status != Status.RETIRED]
    return Service.objects.filter(publisher=tenant, versions__status__in=live).distinct().count()


def get_publisher_version(publisher: Any, version_id: Any) -> ServiceVersion:
    """A version of one of `publisher`'s services by its id (404 for any other id, other publishers' included)."""
    try:
        found = (
            ServiceVersion.objects.select_related("service__publisher")
            .filter(pk=version_id, service__publisher=publisher)
            .first()
        )
    except (ValueError, DjangoValidationError):
        found = None
    if found is None:
        raise NotFoundError("Service version", str(version_id))
    return found
