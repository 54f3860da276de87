"""Admin pages of the tenancy app; every change goes through the tenancy services (and so into the audit log)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from apps.tenancy import quotas, services, sharing
from apps.tenancy.admin_scoping import (
    PlatformAdmin,
    TenantScopedAdmin,
    error_text,
    is_platform_admin,
    run_service_action,
)
from apps.tenancy.audit import record_audit, snapshot
from apps.tenancy.models import (
    AccessRequest,
    AuditLog,
    Grant,
    GrantStatus,
    Membership,
    QuotaOverride,
    QuotaUsage,
    Role,
    SharingPolicy,
    Tenant,
    TierQuota,
)
from apps.tenancy.selectors import get_role
from llm_infra_django.errors import AppError, AuthorizationError, BusinessRuleError, NotFoundError

VIEW_ONLY = frozenset({"view"})


def _adopt(target: Any, saved: Any) -> None:
    """Make the admin's form instance the object a service saved (so the admin's log and redirect use it)."""
    target.__dict__.update(saved.__dict__)


def _delete_all_or_nothing(queryset: QuerySet[Any], call: Any) -> None:
    """Apply a deleting service call to every object in one transaction; the first refusal undoes them all."""
    with transaction.atomic():
        for obj in queryset:
            try:
                call(obj)
            except AppError as exc:
                raise BusinessRuleError(f"Nothing was deleted: {obj}: {error_text(exc)}") from exc


class CommaSeparatedField(forms.CharField):
    """A list of short strings typed as "a, b c" (tenant slugs, region names)."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        text = super().to_python(value) or ""
        return [part for part in text.replace(",", " ").split() if part]


# --- Tenants ------------------------------------------------------------------------------------------------


class TenantAddForm(forms.ModelForm):
    owner_username = forms.CharField(
        required=False, help_text="Username of the tenant's first owner (an existing user); empty for none."
    )
    trial_days = forms.IntegerField(
        required=False, min_value=0, help_text="Days in trial; empty for the default, 0 to start active."
    )

    class Meta:
        model = Tenant
        fields = ["name", "slug", "tier", "region", "timezone", "currency"]

    def clean_owner_username(self) -> Any:
        username = self.cleaned_data.get("owner_username", "").strip()
        if not username:
            return None
        try:
            return services.find_user(username=username)
        except AppError as exc:
            raise forms.ValidationError(error_text(exc)) from exc


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_field = "pk"
    tenant_admin_permissions = frozenset({"view", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    list_display = ["slug", "name", "tier", "status", "region", "member_count", "created_at", "dashboard_link"]
    list_filter = ["tier", "status"]
    search_fields = ["slug", "name"]
    ordering = ["slug"]
    actions = ["export_as_csv", "suspend_tenants", "reactivate_tenants"]
    change_fields = [
        "name",
        "slug",
        "tier",
        "status",
        "region",
        "timezone",
        "currency",
        "trial_ends_at",
        "trusted_publisher",
        "suspension_reason",
        "created_at",
        "updated_at",
    ]
    always_readonly = [
        "slug",
        "status",
        "trial_ends_at",
        "trusted_publisher",
        "suspension_reason",
        "created_at",
        "updated_at",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).annotate(member_count=Count("memberships", distinct=True))

    @admin.display(description="members", ordering="member_count")
    def member_count(self, obj: Tenant) -> int:
        return getattr(obj, "member_count", 0)

    @admin.display(description="usage")
    def dashboard_link(self, obj: Tenant) -> str:
        url = reverse(f"{self.admin_site.name}:usage_dashboard")
        return format_html('<a href="{}?tenant={}">dashboard</a>', url, obj.slug)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return [*TenantAddForm.Meta.fields, "owner_username", "trial_days"]
        return list(self.change_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        if obj is None:
            return []
        readonly = list(self.always_readonly)
        if not is_platform_admin(request.user) and get_role(obj, request.user) != Role.OWNER:
            readonly.append("tier")
        return readonly

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TenantAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            tenant = services.create_tenant(
                name=data["name"],
                slug=data["slug"],
                owner=data.get("owner_username"),
                tier=data["tier"],
                region=data.get("region") or "",
                timezone_name=data["timezone"],
                currency=data["currency"],
                trial_days=data.get("trial_days"),
            )
            _adopt(obj, tenant)
            return
        profile = {name: data[name] for name in form.changed_data if name in services.EDITABLE_FIELDS}
        if profile:
            services.update_tenant(tenant=obj, actor=request.user, **profile)
        if "tier" in form.changed_data:
            services.change_tier(tenant=obj, tier=data["tier"], actor=request.user)
        obj.refresh_from_db()

    def has_suspend_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin(request.user)

    @admin.action(description="Suspend selected tenants…", permissions=["suspend"])
    def suspend_tenants(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> HttpResponse | None:
        """Ask for a reason on an intermediate page, then suspend through the service."""
        reason = request.POST.get("reason", "").strip()
        if request.POST.get("apply") and reason:
            run_service_action(
                self,
                request,
                queryset,
                lambda tenant: services.suspend_tenant(tenant=tenant, actor=request.user, reason=reason),
                "suspended",
            )
            return None
        if request.POST.get("apply"):
            self.message_user(request, "Say why the tenants are suspended.", messages.ERROR)
        context = {
            **self.admin_site.each_context(request),
            "title": "Suspend tenants",
            "opts": self.opts,
            "tenants": queryset,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "tenancy/admin/suspend_tenants.html", context)

    @admin.action(description="Reactivate selected tenants", permissions=["suspend"])
    def reactivate_tenants(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda tenant: services.reactivate_tenant(tenant=tenant, actor=request.user),
            "reactivated",
        )


# --- Members ------------------------------------------------------------------------------------------------


class MembershipAddForm(forms.ModelForm):
    username = forms.CharField(help_text="Username of an existing user to add to the tenant.")

    class Meta:
        model = Membership
        fields = ["tenant", "role"]

    def clean_username(self) -> Any:
        try:
            return services.find_user(username=self.cleaned_data["username"].strip())
        except AppError as exc:
            raise forms.ValidationError(error_text(exc)) from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        user, tenant = data.get("username"), data.get("tenant")
        if user is not None and tenant is not None and Membership.objects.filter(tenant=tenant, user=user).exists():
            raise forms.ValidationError(f"{user} is already a member of {tenant}.")
        return data


def _role_action(role: str) -> Any:
    def action(modeladmin: MembershipAdmin, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        run_service_action(
            modeladmin,
            request,
            queryset,
            lambda membership: services.change_member_role(membership=membership, role=role, actor=request.user),
            f"now {role}",
        )

    action.__name__ = f"make_{role}"
    return admin.action(description=f"Change role of selected members to {role}", permissions=["change"])(action)


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    tenant_field = "tenant"
    list_display = ["user", "tenant", "role", "created_at"]
    list_filter = ["role", "tenant"]
    search_fields = ["user__username", "user__email", "tenant__slug", "tenant__name"]
    list_select_related = ["user", "tenant"]
    actions = ["export_as_csv", *(_role_action(role) for role in Role.values)]

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return ["tenant", "username", "role"] if obj is None else ["tenant", "user", "role", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return [] if obj is None else ["tenant", "user", "created_at"]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = MembershipAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: Membership, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            membership = services.add_member(
                tenant=data["tenant"], user=data["username"], role=data["role"], actor=request.user
            )
            _adopt(obj, membership)
        elif "role" in form.changed_data:
            _adopt(obj, services.change_member_role(membership=obj, role=data["role"], actor=request.user))

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.remove_member(membership=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Membership]) -> None:
        _delete_all_or_nothing(queryset, lambda m: services.remove_member(membership=m, actor=request.user))


# --- Quotas -------------------------------------------------------------------------------------------------


def _invalidate_tier_limits(tier: str) -> None:
    for tenant in Tenant.objects.filter(tier=tier).only("pk"):
        quotas.invalidate_limits(tenant)


@admin.register(TierQuota)
class TierQuotaAdmin(PlatformAdmin):
    """The tier table (SPEC §3) as data; superusers only. A change applies to every tenant of the tier."""

    platform_permissions = frozenset({"view", "add", "change"})
    list_display = ["tier", "quota_type", "period", "limit", "action"]
    list_filter = ["tier", "quota_type", "action"]
    ordering = ["tier", "quota_type"]

    def save_model(self, request: HttpRequest, obj: TierQuota, form: Any, change: bool) -> None:
        # No tenancy service covers the tier table yet: audit and cache invalidation are done here.
        before = snapshot(TierQuota.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        record_audit(
            action="tier_quota_changed" if change else "tier_quota_created",
            tenant=None,
            actor=request.user,
            obj=obj,
            before=before,
            after=snapshot(obj),
        )
        transaction.on_commit(lambda: _invalidate_tier_limits(obj.tier))


class QuotaOverrideForm(forms.ModelForm):
    class Meta:
        model = QuotaOverride
        fields = ["tenant", "quota_type", "limit", "action"]


@admin.register(QuotaOverride)
class QuotaOverrideAdmin(TenantScopedAdmin):
    """Superusers set and clear overrides; tenant admins see theirs."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    form = QuotaOverrideForm
    list_display = ["tenant", "quota_type", "limit", "action", "updated_at"]
    list_filter = ["quota_type", "tenant"]
    search_fields = ["tenant__slug"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return ["tenant", "quota_type"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: QuotaOverride, form: Any, change: bool) -> None:
        override = services.set_quota_override(
            tenant=obj.tenant, quota_type=obj.quota_type, limit=obj.limit, action=obj.action, actor=request.user
        )
        _adopt(obj, override)

    def delete_model(self, request: HttpRequest, obj: QuotaOverride) -> None:
        services.clear_quota_override(tenant=obj.tenant, quota_type=obj.quota_type, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[QuotaOverride]) -> None:
        _delete_all_or_nothing(
            queryset.select_related("tenant"),
            lambda o: services.clear_quota_override(tenant=o.tenant, quota_type=o.quota_type, actor=request.user),
        )


@admin.register(QuotaUsage)
class QuotaUsageAdmin(TenantScopedAdmin):
    """Durable usage counters (read-only; spend shown in USD)."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["tenant", "quota_type", "period_start", "period_end", "amount_used", "updated_at"]
    list_filter = ["quota_type", "tenant"]
    search_fields = ["tenant__slug"]
    list_select_related = ["tenant"]
    date_hierarchy = "period_start"

    @admin.display(description="used", ordering="used")
    def amount_used(self, obj: QuotaUsage) -> str:
        return f"{quotas.from_units(obj.quota_type, obj.used):f}"


# --- Sharing ------------------------------------------------------------------------------------------------


class SharingPolicyForm(forms.ModelForm):
    regions = CommaSeparatedField(
        required=False, help_text="Consumer regions allowed, separated by commas; empty = any."
    )
    allowed_tenant_slugs = CommaSeparatedField(
        required=False, label="Allowed tenants", help_text="Slugs of the tenants that may ask (visibility 'tenant')."
    )
    blocked_tenant_slugs = CommaSeparatedField(
        required=False, label="Blocked tenants", help_text="Slugs of tenants that may never use the resource."
    )

    class Meta:
        model = SharingPolicy
        fields = [
            "resource_type",
            "resource_id",
            *sharing.POLICY_FIELDS,
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["allowed_tenant_slugs"] = [t.slug for t in self.instance.allowed_tenants.all()]
            self.initial["blocked_tenant_slugs"] = [t.slug for t in self.instance.blocked_tenants.all()]

    def _get_validation_exclusions(self) -> set[str]:
        # The model's unique constraint, checked here, would tell a tenant admin that another tenant's resource has a
        # policy; `sharing.create_policy` checks who owns the resource first, then uniqueness.
        return {*super()._get_validation_exclusions(), "resource_type", "resource_id"}


@admin.register(SharingPolicy)
class SharingPolicyAdmin(TenantScopedAdmin):
    """A provider's sharing policies (tenants are named by slug: no widget lists other tenants)."""

    tenant_field = "owner"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    form = SharingPolicyForm
    list_display = [
        "resource_type",
        "resource_id",
        "owner",
        "visibility",
        "requires_approval",
        "max_consumers",
        "active_grants",
        "expires_at",
    ]
    list_filter = ["visibility", "requires_approval", "resource_type"]
    search_fields = ["resource_type", "resource_id", "owner__slug"]
    list_select_related = ["owner"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[SharingPolicy]:
        return (
            super()
            .get_queryset(request)
            .annotate(active_grant_count=Count("grants", filter=Q(grants__status=GrantStatus.ACTIVE), distinct=True))
        )

    @admin.display(description="active grants", ordering="active_grant_count")
    def active_grants(self, obj: SharingPolicy) -> int:
        return getattr(obj, "active_grant_count", 0)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = [
            "resource_type",
            "resource_id",
            *sharing.POLICY_FIELDS,
            "allowed_tenant_slugs",
            "blocked_tenant_slugs",
        ]
        return fields if obj is None else ["owner", *fields, "created_at", "updated_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return [] if obj is None else ["owner", "resource_type", "resource_id", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: SharingPolicy, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            try:
                policy = sharing.create_policy(
                    resource_type=data["resource_type"],
                    resource_id=data["resource_id"],
                    actor=request.user,
                    allowed_tenants=data["allowed_tenant_slugs"],
                    blocked_tenants=data["blocked_tenant_slugs"],
                    **{name: data[name] for name in sharing.POLICY_FIELDS},
                )
            except AuthorizationError:
                # Another tenant's resource is answered as an unknown one (as REST does), so its owner is not named.
                raise NotFoundError(data["resource_type"].capitalize(), data["resource_id"]) from None
            _adopt(obj, policy)
            return
        changed = set(form.changed_data)
        policy = sharing.update_policy(
            policy=obj,
            actor=request.user,
            allowed_tenants=data["allowed_tenant_slugs"] if "allowed_tenant_slugs" in changed else None,
            blocked_tenants=data["blocked_tenant_slugs"] if "blocked_tenant_slugs" in changed else None,
            **{name: data[name] for name in sharing.POLICY_FIELDS if name in changed},
        )
        _adopt(obj, policy)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """The tenant lists were saved by the service; nothing else is related."""


@admin.register(AccessRequest)
class AccessRequestAdmin(TenantScopedAdmin):
    """Requests a tenant made (as consumer) or received (as provider); providers approve or reject."""

    tenant_field = ("consumer", "policy__owner")
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["created_at", "consumer", "policy", "status", "requested_by", "decided_by", "decided_at"]
    list_filter = ["status"]
    search_fields = ["consumer__slug", "policy__resource_id", "policy__owner__slug", "message"]
    list_select_related = ["consumer", "policy__owner", "requested_by", "decided_by"]
    actions = ["export_as_csv", "approve_requests", "reject_requests"]

    @admin.action(description="Approve selected requests (provider)", permissions=["view"])
    def approve_requests(self, request: HttpRequest, queryset: QuerySet[AccessRequest]) -> None:
        run_service_action(
            self, request, queryset, lambda a: sharing.approve_request(access=a, actor=request.user), "approved"
        )

    @admin.action(description="Reject selected requests (provider)", permissions=["view"])
    def reject_requests(self, request: HttpRequest, queryset: QuerySet[AccessRequest]) -> None:
        run_service_action(
            self, request, queryset, lambda a: sharing.reject_request(access=a, actor=request.user), "rejected"
        )


@admin.register(Grant)
class GrantAdmin(TenantScopedAdmin):
    """Grants a tenant holds (as consumer) or gave (as provider); either side may revoke."""

    tenant_field = ("consumer", "policy__owner")
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["granted_at", "consumer", "policy", "status", "expires_at", "revoked_at"]
    list_filter = ["status"]
    search_fields = ["consumer__slug", "policy__resource_id", "policy__owner__slug"]
    list_select_related = ["consumer", "policy__owner"]
    actions = ["export_as_csv", "revoke_grants"]

    @admin.action(description="Revoke selected grants", permissions=["view"])
    def revoke_grants(self, request: HttpRequest, queryset: QuerySet[Grant]) -> None:
        run_service_action(
            self, request, queryset, lambda g: sharing.revoke_grant(grant=g, actor=request.user), "revoked"
        )


# --- Audit log ----------------------------------------------------------------------------------------------


@admin.register(AuditLog)
class AuditLogAdmin(TenantScopedAdmin):
    """The append-only audit log: read-only for everyone, superusers included; tenant admins see their tenant's."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["created_at", "action", "tenant", "actor_label", "object_type", "object_id", "request_id"]
    list_filter = ["action", "object_type"]
    search_fields = ["action", "object_type", "object_id", "actor_label", "request_id"]
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    fields = [
        "created_at",
        "action",
        "tenant",
        "actor",
        "actor_label",
        "object_type",
        "object_id",
        "before_json",
        "after_json",
        "request_id",
    ]
    readonly_fields = fields

    @admin.display(description="before")
    def before_json(self, obj: AuditLog) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.before, indent=2, sort_keys=True))

    @admin.display(description="after")
    def after_json(self, obj: AuditLog) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.after, indent=2, sort_keys=True))
