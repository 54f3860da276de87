"""Admin pages of the publishing app: services, versions and validation runs, tenant-scoped and read-only; lifecycle
actions call the publishing services (so every change is checked, audited and invalidates cached routes)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin.helpers import ActionForm
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from apps.publishing import services
from apps.publishing.models import Service, ServiceVersion, ValidationRun, ValidationStep
from apps.tenancy.admin_scoping import TenantScopedAdmin, is_platform_admin, run_service_action

VIEW_ONLY = frozenset({"view"})


class NotesActionForm(ActionForm):
    """The action bar with a text box: the notes of an approval or rejection, the reason of a suspension."""

    notes = forms.CharField(
        required=False,
        max_length=500,
        label="Notes / reason",
        help_text="Needed to reject or suspend.",
        widget=forms.TextInput(attrs={"size": 40}),
    )


class ReadOnlyInline(admin.TabularInline):
    """Rows shown under their parent, never edited here (the parent admin already limits who sees the page)."""

    extra = 0
    can_delete = False
    show_change_link = True

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ServiceVersionInline(ReadOnlyInline):
    model = ServiceVersion
    fields = ["version", "status", "name", "category", "pricing_model", "published_at"]
    readonly_fields = fields
    ordering = ["-major", "-minor", "-patch"]


class ValidationRunInline(ReadOnlyInline):
    model = ValidationRun
    fields = ["outcome", "result_status", "started_at", "finished_at"]
    readonly_fields = fields


class ValidationStepInline(ReadOnlyInline):
    model = ValidationStep
    fields = ["position", "name", "outcome", "messages_json", "duration_ms"]
    readonly_fields = fields
    show_change_link = False
    ordering = ["position"]

    @admin.display(description="messages")
    def messages_json(self, step: ValidationStep) -> str:
        return format_html("<pre>{}</pre>", json.dumps(step.messages, indent=2))


@admin.register(Service)
class ServiceAdmin(TenantScopedAdmin):
    """Service identities; their content and lifecycle live in the versions."""

    tenant_field = "publisher"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["__str__", "publisher", "version_count", "created_at"]
    list_filter = ["publisher"]
    list_select_related = ["publisher"]
    search_fields = ["slug", "publisher__slug"]
    ordering = ["publisher__slug", "slug"]
    fields = ["id", "publisher", "slug", "created_at"]
    readonly_fields = fields
    inlines = [ServiceVersionInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Service]:
        return super().get_queryset(request).annotate(version_count=Count("versions"))

    @admin.display(description="versions", ordering="version_count")
    def version_count(self, service: Service) -> int:
        return getattr(service, "version_count", 0)


@admin.register(ServiceVersion)
class ServiceVersionAdmin(TenantScopedAdmin):
    """Versions, read-only (a definition changes only by publishing a new version); lifecycle as actions."""

    tenant_field = "service__publisher"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["__str__", "name", "status", "category", "pricing_model", "compliance_level", "published_at"]
    list_filter = ["status", "category", "pricing_model", "compliance_level", "protocol"]
    list_select_related = ["service__publisher"]
    search_fields = ["name", "version", "service__slug", "service__publisher__slug"]
    ordering = ["service__publisher__slug", "service__slug", "-major", "-minor", "-patch"]
    date_hierarchy = "created_at"
    action_form = NotesActionForm
    actions = [
        "export_as_csv",
        "approve_versions",
        "reject_versions",
        "suspend_versions",
        "reactivate_versions",
        "deprecate_versions",
        "retire_versions",
    ]
    fieldsets = [
        (None, {"fields": ["id", "service", "version", "status", "name", "description", "category", "tags"]}),
        ("Endpoint", {"fields": ["protocol", "endpoint_url", "upstream_model", "auth_kind"]}),
        (
            "Pricing",
            {
                "fields": [
                    "pricing_model",
                    "price_input_per_mtok",
                    "price_output_per_mtok",
                    "price_cached_input_per_mtok",
                    "price_per_request",
                    "currency",
                ]
            },
        ),
        ("SLA", {"fields": ["sla_availability", "sla_max_latency_ms", "sla_timeout_ms", "support_level"]}),
        (
            "Compliance",
            {"fields": ["compliance_level", "certifications", "data_residency", "gdpr_compliant", "hipaa_compliant"]},
        ),
        ("Model", {"fields": ["context_length", "modalities", "capabilities", "openapi_document"]}),
        (
            "Lifecycle",
            {
                "fields": [
                    "published_at",
                    "deprecated_at",
                    "retire_at",
                    "suspension_reason",
                    "review_notes",
                    "created_at",
                    "updated_at",
                ]
            },
        ),
    ]
    readonly_fields = ["id", "service", "status", "created_at", "updated_at"]
    inlines = [ValidationRunInline]

    def has_platform_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin(request.user)

    def _notes(self, request: HttpRequest) -> str:
        return request.POST.get("notes", "").strip()

    @admin.action(description="Approve selected versions (staff)", permissions=["platform"])
    def approve_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        notes = self._notes(request)
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.approve_version(version=v, actor=request.user, notes=notes),
            "approved",
        )

    @admin.action(description="Reject selected versions with the notes (staff)", permissions=["platform"])
    def reject_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        notes = self._notes(request)
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.reject_version(version=v, actor=request.user, notes=notes),
            "rejected",
        )

    @admin.action(description="Suspend selected versions with the reason (staff)", permissions=["platform"])
    def suspend_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        reason = self._notes(request)
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.suspend_version(version=v, actor=request.user, reason=reason),
            "suspended",
        )

    @admin.action(description="Reactivate selected versions (staff)", permissions=["platform"])
    def reactivate_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.reactivate_version(version=v, actor=request.user),
            "reactivated",
        )

    @admin.action(description="Deprecate selected versions", permissions=["view"])
    def deprecate_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.deprecate_version(version=v, actor=request.user),
            "deprecated",
        )

    @admin.action(description="Retire selected versions", permissions=["view"])
    def retire_versions(self, request: HttpRequest, queryset: QuerySet[ServiceVersion]) -> None:
        run_service_action(
            self,
            request,
            queryset,
            lambda v: services.retire_version(version=v, actor=request.user),
            "retired",
        )


@admin.register(ValidationRun)
class ValidationRunAdmin(TenantScopedAdmin):
    """Runs of the publishing pipeline with their steps."""

    tenant_field = "version__service__publisher"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["__str__", "version_link", "outcome", "result_status", "started_at", "finished_at"]
    list_filter = ["outcome", "result_status"]
    list_select_related = ["version__service__publisher"]
    search_fields = ["version__service__slug", "version__service__publisher__slug", "version__version"]
    ordering = ["-started_at"]
    fields = ["id", "version", "outcome", "result_status", "started_at", "finished_at"]
    readonly_fields = fields
    inlines = [ValidationStepInline]

    @admin.display(description="version")
    def version_link(self, run: ValidationRun) -> str:
        url = reverse("admin:publishing_serviceversion_change", args=[run.version_id])
        return format_html('<a href="{}">{}</a>', url, run.version)
