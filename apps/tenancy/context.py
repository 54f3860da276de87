"""The tenant of a request: from the API key, else the `X-Tenant` header if the user is a member, else the user's
single membership. A header alone never grants access."""

from __future__ import annotations

from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.tenancy.models import Membership, Tenant
from llm_infra_django.errors import AuthenticationError, AuthorizationError, ValidationError
from llm_infra_django.logging import bind_context

TENANT_HEADER = "X-Tenant"
_CACHE_ATTR = "_tenancy_tenant"


def _django_request(request: Any) -> HttpRequest:
    return getattr(request, "_request", request)


def _remember(request: Any, tenant: Tenant | None) -> Tenant | None:
    for target in {id(request): request, id(_django_request(request)): _django_request(request)}.values():
        setattr(target, _CACHE_ATTR, tenant)
    if tenant is not None:
        bind_context(tenant=tenant.slug)
    return tenant


def resolve_tenant(request: Any, *, required: bool = False) -> Tenant | None:
    """The tenant the request acts for (cached on the request). Raises 403 for a header naming a tenant the caller
    does not belong to; with `required`, raises when no tenant can be determined."""
    cached = getattr(request, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    header = (_django_request(request).headers.get(TENANT_HEADER) or "").strip()
    auth = getattr(request, "auth", None)
    key_tenant_id = getattr(auth, "tenant_id", None)
    tenant: Tenant | None = None
    if key_tenant_id is not None:
        tenant = getattr(auth, "tenant", None) or Tenant.objects.filter(pk=key_tenant_id).first()
        if header and tenant is not None and header != tenant.slug:
            raise AuthorizationError(f"This API key belongs to tenant '{tenant.slug}', not '{header}'.")
    else:
        user = getattr(request, "user", None)
        authenticated = bool(getattr(user, "is_authenticated", False))
        if header:
            if not authenticated:
                raise AuthenticationError("Authenticate before naming a tenant in the X-Tenant header.")
            # A NUL character cannot be compared by PostgreSQL (an error, not "no such slug"): it names no tenant.
            tenant = Tenant.objects.filter(slug=header).first() if "\x00" not in header else None
            allowed = tenant is not None and (
                user.is_superuser or Membership.objects.filter(tenant=tenant, user=user).exists()
            )
            if not allowed:
                raise AuthorizationError(f"You are not a member of tenant '{header}'.")
        elif authenticated:
            memberships = list(Membership.objects.filter(user=user).select_related("tenant")[:2])
            if len(memberships) == 1:
                tenant = memberships[0].tenant
            elif required and memberships:
                raise ValidationError(
                    fields={TENANT_HEADER: ["You belong to several tenants: name one in the X-Tenant header."]}
                )
    if tenant is None and required:
        raise AuthorizationError("This needs a tenant: you do not belong to any.")
    return _remember(request, tenant)


def require_tenant(request: Any) -> Tenant:
    """The tenant the request acts for, which it must have (`resolve_tenant(required=True)`): 403 when the caller
    belongs to none, 400 when it belongs to several and names none, 403 for a header naming another."""
    tenant = resolve_tenant(request, required=True)
    assert tenant is not None  # required=True raises instead
    return tenant


def tenant_for_logs(request: HttpRequest) -> str | None:
    """`LLM_INFRA["TENANT_RESOLVER"]`: the tenant already resolved for this request (never queries)."""
    tenant = getattr(request, _CACHE_ATTR, None)
    return tenant.slug if tenant is not None else None


class TenantContextMiddleware:
    """Give plain Django views `request.tenant` (resolved on first use, from the session user and `X-Tenant`)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        request.tenant = SimpleLazyObject(lambda: resolve_tenant(request))  # type: ignore[attr-defined]
        return self.get_response(request)
