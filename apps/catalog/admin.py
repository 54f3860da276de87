"""Admin pages of the catalog, scoped to the user's tenants; changes go through the catalog services (and so into
the audit log). A model's page shows its lineage as a server-rendered SVG picture, with a full-page view."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

from apps.catalog import lineage, selectors, services, svg
from apps.catalog.conf import catalog_settings
from apps.catalog.models import (
    CatalogModel,
    Dataset,
    Evaluation,
    LineageEdge,
    LineageNode,
    ModelVersion,
    ServedBy,
    TrainingRun,
)
from apps.catalog.services.offers import unlink_offer
from apps.tenancy.admin_scoping import TenantScopedAdmin, error_text, not_found
from llm_infra_django.errors import AppError

VIEW_ONLY = frozenset({"view"})


def _adopt(target: Any, saved: Any) -> None:
    """Make the admin's form instance the object a service saved (so the admin's log and redirect use it)."""
    target.__dict__.update(saved.__dict__)


class ListField(forms.CharField):
    """A list of short strings typed as "a, b c"."""

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        text = super().to_python(value) or ""
        return [part for part in text.replace(",", " ").split() if part]


def _changed_values(form: forms.ModelForm, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: form.cleaned_data[name] for name in form.changed_data if name in names}


# --- Models --------------------------------------------------------------------------------------------------


class CatalogModelForm(forms.ModelForm):
    tags = ListField(required=False, help_text="Comma- or space-separated, at most 20.")
    languages = ListField(required=False, help_text="ISO 639-1 codes, e.g. en, fr.")

    class Meta:
        model = CatalogModel
        fields = [
            "owner",
            "slug",
            "name",
            "description",
            "base_model_name",
            "base_model_provider",
            "model_type",
            "architecture",
            "category",
            "tags",
            "languages",
            "license",
            "commercial_use",
            "open_offers",
            "visibility",
            "status",
        ]


@admin.register(CatalogModel)
class CatalogModelAdmin(TenantScopedAdmin):
    tenant_field = "owner"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    form = CatalogModelForm
    list_display = ["handle_display", "name", "category", "visibility", "status", "quality_score", "updated_at"]
    list_filter = ["category", "visibility", "status", "model_type", "owner"]
    search_fields = ["slug", "name", "base_model_name"]
    ordering = ["owner__slug", "slug"]
    readonly_fields = ["quality_score", "quality_breakdown", "lineage_picture", "compliance_summary", "offers_table"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[CatalogModel]:
        return super().get_queryset(request).select_related("owner")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "owner", "slug"] if obj is not None else readonly

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fields = list(CatalogModelForm.Meta.fields)
        if obj is None:  # a new model's offers follow its license (see services.create_model)
            return [f for f in fields if f not in ("status", "open_offers")]
        return [*fields, "offers_table", "quality_score", "quality_breakdown", "compliance_summary", "lineage_picture"]

    @admin.display(description="handle", ordering="slug")
    def handle_display(self, obj: CatalogModel) -> str:
        return obj.handle

    @admin.display(description="lineage")
    def lineage_picture(self, obj: CatalogModel) -> SafeString | str:
        if obj.pk is None:
            return "—"
        return format_html(
            '<div style="overflow:auto;max-width:100%">{}</div><p><a href="{}">Full lineage and graph checks</a></p>',
            lineage_svg(obj, depth=int(catalog_settings.LINEAGE_DEFAULT_DEPTH)),
            reverse(f"{self.admin_site.name}:catalog_catalogmodel_lineage", args=[obj.pk]),
        )

    @admin.display(description="offers")
    def offers_table(self, obj: CatalogModel) -> SafeString | str:
        """Every provider's offer of the model, per version, each with a link to unlink it (its health is on
        `/api/v1/models/<slug>/offers/`: the catalog does not read the proxy's figures)."""
        if obj.pk is None:
            return "—"
        links = selectors.list_offer_links([obj])
        if not links:
            return "No offers."
        rows = [
            format_html(
                '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href="{}">unlink</a></td></tr>',
                link.model_version.version,
                str(link.service_version),
                link.service_version.service.publisher.slug,
                link.service_version.status,
                reverse(f"{self.admin_site.name}:catalog_servedby_delete", args=[link.pk]),
            )
            for link in links
        ]
        return format_html(
            "<table><thead><tr><th>version</th><th>offer</th><th>provider</th><th>status</th><th></th></tr></thead>"
            "<tbody>{}</tbody></table>",
            mark_safe("".join(rows)),  # noqa: S308 (each row escaped by format_html)
        )

    @admin.display(description="compliance")
    def compliance_summary(self, obj: CatalogModel) -> SafeString | str:
        if obj.pk is None:
            return "—"
        report = selectors.model_compliance(obj)
        if report.compliant and not report.warnings:
            return "Compliant."
        items = [
            format_html("<li><strong>{}</strong> ({}): {}</li>", f.code, f.severity, f.message)
            for f in [*report.violations, *report.warnings]
        ]
        verdict = "Compliant, with warnings" if report.compliant else "Not compliant"
        return format_html("<p>{}</p><ul>{}</ul>", verdict, mark_safe("".join(items)))  # noqa: S308 (items escaped)

    def save_model(self, request: HttpRequest, obj: CatalogModel, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            values = _changed_values(form, (*services.MODEL_FIELDS, "status"))
            saved = services.update_model(model=obj, actor=request.user, values=values) if values else obj
        else:
            values = {name: data[name] for name in services.MODEL_FIELDS if name in data}
            saved = services.create_model(owner=data["owner"], actor=request.user, slug=data["slug"], values=values)
        _adopt(obj, saved)

    def get_urls(self) -> list[URLPattern]:
        own = [
            path(
                "<path:object_id>/lineage/",
                self.admin_site.admin_view(self.lineage_view),
                name="catalog_catalogmodel_lineage",
            )
        ]
        return own + super().get_urls()

    def lineage_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The model's lineage at a chosen depth (`?depth=`), and the checks of its owner's whole graph."""
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            return not_found(request, "No model with this id.")
        try:
            depth = lineage.clean_depth(request.GET.get("depth"))
        except AppError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            depth = lineage.clean_depth(None)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Lineage of {obj.handle}",
            "opts": self.opts,
            "original": obj,
            "depth": depth,
            "max_depth": catalog_settings.LINEAGE_MAX_DEPTH,
            "picture": lineage_svg(obj, depth=depth),
            "report": selectors.validate_lineage(obj.owner),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "catalog/admin/lineage.html", context)


def lineage_svg(model: CatalogModel, *, depth: int) -> SafeString:
    """The SVG picture of a model's lineage (every text in it escaped by the renderer)."""
    drawn = selectors.model_lineage(model, depth=depth)
    sub = drawn["subgraph"]
    picture = svg.render_svg(sub.nodes, sub.edges, highlight=set(sub.start_ids), drawing=drawn["layout"])
    return mark_safe(picture)  # noqa: S308 - built by svg.render_svg, which escapes every label


# --- Versions ------------------------------------------------------------------------------------------------


class ModelVersionForm(forms.ModelForm):
    served_by_ids = ListField(
        required=False, label="Served by", help_text="Ids of the owner's service versions serving this version."
    )

    class Meta:
        model = ModelVersion
        fields = [
            "model",
            "version",
            "status",
            "artifacts",
            "parameter_count",
            "changelog",
            "breaking",
            "p50_latency_ms",
            "p95_latency_ms",
            "throughput_tokens_per_s",
        ]


@admin.register(ModelVersion)
class ModelVersionAdmin(TenantScopedAdmin):
    tenant_field = "model__owner"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    form = ModelVersionForm
    list_display = ["__str__", "status", "size_bytes", "p95_latency_ms", "quality_score", "created_at"]
    list_filter = ["status", "breaking"]
    search_fields = ["model__slug", "model__name", "version"]
    readonly_fields = ["size_bytes", "quality_score", "quality_breakdown"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ModelVersion]:
        return super().get_queryset(request).select_related("model__owner")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "model", "version"] if obj is not None else readonly

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        form = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None:
            form.base_fields["served_by_ids"].initial = [
                str(i) for i in obj.served_by.values_list("service_version_id", flat=True)
            ]
        return form

    def save_model(self, request: HttpRequest, obj: ModelVersion, form: Any, change: bool) -> None:
        data = form.cleaned_data
        served_by = data.get("served_by_ids") if "served_by_ids" in form.changed_data or not change else None
        if change:
            values = _changed_values(form, services.VERSION_FIELDS)
            saved = services.update_version(version=obj, actor=request.user, values=values, served_by=served_by)
        else:
            values = {name: data[name] for name in services.VERSION_FIELDS if name in data}
            saved = services.create_version(
                model=data["model"], actor=request.user, version=data["version"], values=values, served_by=served_by
            )
        _adopt(obj, saved)


# --- Offers --------------------------------------------------------------------------------------------------


@admin.register(ServedBy)
class ServedByAdmin(TenantScopedAdmin):
    """Offers of catalog models: the model owner's admins and the provider's admins see them and may unlink them
    (through `unlink_offer`, which checks the role and writes the audit entry)."""

    tenant_field = ("model_version__model__owner", "service_version__service__publisher")
    tenant_admin_permissions = frozenset({"view", "delete"})
    platform_permissions = frozenset({"view", "delete"})
    list_display = ["model_version", "offer", "provider", "service_status", "created_at"]
    search_fields = ["model_version__model__slug", "service_version__service__slug"]
    readonly_fields = ["model_version", "service_version", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ServedBy]:
        return (
            super()
            .get_queryset(request)
            .select_related("model_version__model__owner", "service_version__service__publisher")
        )

    @admin.display(description="offer")
    def offer(self, obj: ServedBy) -> str:
        return str(obj.service_version)

    @admin.display(description="provider")
    def provider(self, obj: ServedBy) -> str:
        return str(obj.service_version.service.publisher.slug)

    @admin.display(description="status")
    def service_status(self, obj: ServedBy) -> str:
        return str(obj.service_version.status)

    def delete_model(self, request: HttpRequest, obj: ServedBy) -> None:
        unlink_offer(link=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[ServedBy]) -> None:
        for link in queryset:
            unlink_offer(link=link, actor=request.user)


# --- Datasets, runs, evaluations -----------------------------------------------------------------------------


class DatasetForm(forms.ModelForm):
    certifications = ListField(required=False, help_text="e.g. HIPAA, SOC2.")

    class Meta:
        model = Dataset
        fields = ["owner", "slug", *services.DATASET_FIELDS]


@admin.register(Dataset)
class DatasetAdmin(TenantScopedAdmin):
    tenant_field = "owner"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    form = DatasetForm
    list_display = ["__str__", "name", "license", "commercial_use", "pii_detected", "pii_removed", "visibility"]
    list_filter = ["visibility", "commercial_use", "pii_detected", "contains_health_data", "owner"]
    search_fields = ["slug", "name", "license"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Dataset]:
        return super().get_queryset(request).select_related("owner")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "owner", "slug"] if obj is not None else readonly

    def save_model(self, request: HttpRequest, obj: Dataset, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            values = _changed_values(form, services.DATASET_FIELDS)
            if "checksum_sha256" in values and not values["checksum_sha256"]:
                values["checksum_sha256"] = ""
            saved = services.update_dataset(dataset=obj, actor=request.user, values=values) if values else obj
        else:
            values = {name: data[name] for name in services.DATASET_FIELDS if name in data}
            saved = services.create_dataset(owner=data["owner"], actor=request.user, slug=data["slug"], values=values)
        _adopt(obj, saved)


@admin.register(TrainingRun)
class TrainingRunAdmin(TenantScopedAdmin):
    tenant_field = "owner"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["name", "owner", "status", "model_version", "duration_seconds", "cost_usd", "created_at"]
    list_filter = ["status"]
    search_fields = ["name"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[TrainingRun]:
        return super().get_queryset(request).select_related("owner", "model_version__model__owner")


@admin.register(Evaluation)
class EvaluationAdmin(TenantScopedAdmin):
    tenant_field = "model_version__model__owner"
    tenant_admin_permissions = frozenset({"view", "delete"})
    platform_permissions = frozenset({"view", "delete"})
    list_display = ["__str__", "benchmark", "score", "status", "source", "completed_at"]
    list_filter = ["benchmark", "status", "source"]
    search_fields = ["benchmark_name", "model_version__model__slug"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Evaluation]:
        return super().get_queryset(request).select_related("model_version__model__owner")

    def delete_model(self, request: HttpRequest, obj: Evaluation) -> None:
        services.delete_evaluation(evaluation=obj, actor=request.user)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Evaluation]) -> None:
        for evaluation in queryset:
            services.delete_evaluation(evaluation=evaluation, actor=request.user)


@admin.register(LineageNode)
class LineageNodeAdmin(TenantScopedAdmin):
    tenant_field = "graph__owner"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["label", "kind", "ref", "created_at"]
    list_filter = ["kind"]
    search_fields = ["label", "ref"]


@admin.register(LineageEdge)
class LineageEdgeAdmin(TenantScopedAdmin):
    tenant_field = "graph__owner"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["source", "edge_type", "target", "created_at"]
    list_filter = ["edge_type"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[LineageEdge]:
        return super().get_queryset(request).select_related("source", "target")
