"""OpenAPI pieces every app's REST API shares: the `X-Tenant` header naming the tenant a caller acts for."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from apps.tenancy.context import TENANT_HEADER

TENANT_HEADER_DESCRIPTION = (
    "Slug of the tenant to act for; needed when the caller belongs to several. Only a tenant the caller is a member "
    "of is accepted (403 otherwise)."
)


def tenant_header_parameter(description: str = TENANT_HEADER_DESCRIPTION) -> OpenApiParameter:
    """The `X-Tenant` header as an operation's parameter, described for that API."""
    return OpenApiParameter(TENANT_HEADER, OpenApiTypes.STR, OpenApiParameter.HEADER, description=description)


TENANT_HEADER_PARAMETER = tenant_header_parameter()
