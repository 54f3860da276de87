"""The marketplace's admin site: platform staff and tenant owners/admins log in; it adds the usage dashboard."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.contenttypes import views as contenttype_views
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError as FormValidationError
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from apps.tenancy.admin_scoping import admin_tenant_ids_for, can_use_admin, is_platform_admin, not_found
from apps.tenancy.conf import tenancy_settings
from apps.tenancy.dashboard import dashboard_data
from apps.tenancy.models import Tenant
from apps.tenancy.selectors import admin_tenant_ids
from llm_infra_django.errors import RateLimitError
from llm_infra_django.ratelimit.identity import client_ip, hashed
from llm_infra_django.ratelimit.limiter import limiter, make_key


class TenantAdminAuthenticationForm(AdminAuthenticationForm):
    """Admin login for platform staff and for owners/admins of a tenant (who need not be `is_staff`)."""

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_login": (
            "Please enter the correct %(username)s and password of an account that may use the admin "
            "(platform staff, or an owner or admin of a tenant). Both fields may be case-sensitive."
        ),
    }

    def confirm_login_allowed(self, user: Any) -> None:
        # Skip AdminAuthenticationForm's is_staff test; keep AuthenticationForm's is_active test.
        super(AdminAuthenticationForm, self).confirm_login_allowed(user)
        if not (user.is_staff or user.is_superuser or admin_tenant_ids(user)):
            raise FormValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )


def _throttle_login(request: HttpRequest) -> None:
    """Count one sign-in attempt for the username from this client address (`ADMIN_LOGIN_RATE`) and for the client
    address (`ADMIN_LOGIN_CLIENT_RATE`); a 429 once either is over (the error middleware renders it as a page for
    browsers). The username is never limited on its own, so nobody can lock its owner out from another address."""
    client = f"ip:{client_ip(request) or 'unknown'}"
    # Hashed: people type their password into the username field.
    username = hashed(str(request.POST.get("username", ""))[:150].strip().lower())
    limits = (
        (f"{client}:user:{username}", tenancy_settings.ADMIN_LOGIN_RATE),
        (client, tenancy_settings.ADMIN_LOGIN_CLIENT_RATE),
    )
    for identity, rate in limits:
        if not rate:
            continue
        decision = limiter.hit(make_key("admin-login", identity), rate)
        if not decision.allowed:
            raise RateLimitError("Too many sign-in attempts; try again later.", retry_after=decision.retry_after)


class MarketplaceAdminSite(admin.AdminSite):
    """`admin.site` of the project (set through `apps.tenancy.apps.MarketplaceAdminConfig`)."""

    site_header = "LLM Marketplace administration"
    site_title = "LLM Marketplace admin"
    index_title = "Administration"
    login_form = TenantAdminAuthenticationForm
    index_template = "tenancy/admin/index.html"

    def has_permission(self, request: HttpRequest) -> bool:
        return can_use_admin(request)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """The login page; sign-in attempts are limited per username and client address, and per client address."""
        if request.method == "POST":
            _throttle_login(request)
        return super().login(request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own = [
            path("usage-dashboard/", self.admin_view(self.usage_dashboard_view), name="usage_dashboard"),
            path("r/<int:content_type_id>/<path:object_id>/", self.admin_view(self.view_on_site), name="view_on_site"),
        ]
        return own + [url for url in super().get_urls() if getattr(url, "name", None) != "view_on_site"]

    def view_on_site(self, request: HttpRequest, content_type_id: int, object_id: str) -> HttpResponse:
        """Django's "view on site" redirect, for superusers and for the objects a tenant admin may view. Any other
        object (another tenant's, a missing one, one of an unknown type) is the same 404: Django's own view answers
        differently for an object that exists, which told tenant admins what other tenants have."""
        if not is_platform_admin(request.user):
            try:
                model = ContentType.objects.get_for_id(content_type_id).model_class()
            except ContentType.DoesNotExist:
                model = None
            model_admin = self._registry.get(model) if model is not None else None
            visible = model_admin is not None and model_admin.has_view_permission(request)
            if not (visible and model_admin.get_object(request, object_id) is not None):
                return not_found(request, "No such object.")
        return contenttype_views.shortcut(request, content_type_id, object_id)

    def dashboard_tenants(self, request: HttpRequest) -> list[Tenant]:
        """Tenants whose dashboard the user may open: all for superusers, else those they own or administer."""
        tenants = Tenant.objects.order_by("slug")
        if not is_platform_admin(request.user):
            tenants = tenants.filter(pk__in=admin_tenant_ids_for(request))
        return list(tenants)

    def usage_dashboard_view(self, request: HttpRequest) -> HttpResponse:
        """Requests and spend per day and per service, and quota gauges, of one tenant (picked by `?tenant=`)."""
        tenants = self.dashboard_tenants(request)
        slug = request.GET.get("tenant", "").strip()
        if slug:
            tenant = next((t for t in tenants if t.slug == slug), None)
            if tenant is None:
                return not_found(request, "No such tenant.")
        else:
            tenant = tenants[0] if tenants else None
        context = {
            **self.each_context(request),
            "title": f"Usage dashboard — {tenant.name}" if tenant else "Usage dashboard",
            "tenants": tenants,
            "tenant": tenant,
            "data": dashboard_data(tenant) if tenant else None,
        }
        request.current_app = self.name
        return TemplateResponse(request, "tenancy/admin/usage_dashboard.html", context)
