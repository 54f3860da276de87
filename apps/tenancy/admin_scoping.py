"""Tenant scoping for the Django admin: the base `ModelAdmin` every app's admin uses, and its helpers."""

from __future__ import annotations

import csv
import html
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import get_fields_from_path, label_for_field, lookup_field
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models import Q, QuerySet
from django.forms import Field as FormField
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.urls import get_resolver
from django.utils import timezone
from django.utils.html import strip_tags
from django.utils.safestring import SafeData
from django.utils.text import capfirst, slugify

from apps.tenancy.models import Tenant
from apps.tenancy.selectors import admin_tenant_ids
from llm_infra_django.errors import AppError

PERMISSIONS = frozenset({"view", "add", "change", "delete"})
# Model fields whose name contains one of these are treated as secrets even when a ModelAdmin forgets to list them.
SECRET_FIELD_MARKERS = ("secret", "password", "_hash", "encrypted")
_ADMIN_IDS_ATTR = "_tenancy_admin_tenant_ids"
_SCOPE_CACHE_ATTR = "_tenancy_admin_scope_cache"
# Characters that make a spreadsheet treat a cell as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def is_platform_admin(user: Any) -> bool:
    """Platform superusers see and change every tenant's rows."""
    return bool(getattr(user, "is_active", False) and getattr(user, "is_superuser", False))


def admin_tenant_ids_for(request: HttpRequest) -> frozenset[Any]:
    """Ids of the tenants the request's user is owner or admin of (one query per request)."""
    cached = getattr(request, _ADMIN_IDS_ATTR, None)
    if cached is None:
        user = request.user
        active = getattr(user, "is_authenticated", False) and user.is_active
        cached = frozenset(admin_tenant_ids(user)) if active else frozenset()
        setattr(request, _ADMIN_IDS_ATTR, cached)
    return cached


def can_use_admin(request: HttpRequest) -> bool:
    """Active platform staff, and active owners/admins of at least one tenant, may use `/admin/`."""
    user = request.user
    if not (getattr(user, "is_authenticated", False) and user.is_active):
        return False
    return bool(user.is_staff or user.is_superuser or admin_tenant_ids_for(request))


def not_found(request: HttpRequest, message: str) -> HttpResponse:
    """The project's own 404 response (its `handler404`: an HTML page for browsers, the envelope otherwise)."""
    handler = get_resolver(getattr(request, "urlconf", None)).resolve_error_handler(404)
    return handler(request, Http404(message))


def error_text(exc: AppError) -> str:
    """A one-line, human message for a domain error shown in the admin."""
    return str(exc.message)


def run_service_action(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet[Any],
    call: Callable[[Any], Any],
    done: str,
) -> None:
    """Apply a service call to each selected object; report how many succeeded and why the others failed.

    `done` is a past-tense phrase ("suspended"); each object runs in its own transaction (the service's)."""
    succeeded = 0
    failures: list[str] = []
    for obj in queryset:
        try:
            call(obj)
        except AppError as exc:
            failures.append(f"{obj}: {error_text(exc)}")
        else:
            succeeded += 1
    if succeeded:
        noun = modeladmin.opts.verbose_name if succeeded == 1 else modeladmin.opts.verbose_name_plural
        modeladmin.message_user(request, f"{succeeded} {noun} {done}.", messages.SUCCESS)
    for failure in failures:
        modeladmin.message_user(request, failure, messages.ERROR)


def _csv_cell(value: Any) -> str:
    """A value as plain text for a CSV cell. Any text (a string, a related object, a display column's HTML reduced to
    its text) that a spreadsheet would run as a formula is quoted; numbers, dates and booleans cannot be one."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat() if timezone.is_aware(value) else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    text = html.unescape(strip_tags(value)) if isinstance(value, SafeData) else str(value)
    return "'" + text if text.startswith(_FORMULA_PREFIXES) else text


class _Echo:
    """A write-only file whose `write` returns the line, for streaming `csv.writer` output."""

    def write(self, value: str) -> str:
        return value


class ScopedAllValuesFieldListFilter(admin.AllValuesFieldListFilter):
    """Like Django's all-values filter, but its choices come from the admin's (scoped) rows even across relations."""

    def __init__(
        self,
        field: Any,
        request: HttpRequest,
        params: Any,
        model: type[models.Model],
        model_admin: Any,
        field_path: str,
    ) -> None:
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = (
            model_admin.get_queryset(request).distinct().order_by(field_path).values_list(field_path, flat=True)
        )


class TenantScopedAdmin(admin.ModelAdmin):
    """A `ModelAdmin` that shows a tenant's owners/admins only their tenants' rows; superusers see everything.

    Subclasses set `tenant_field`: the path from the model to its tenant ("tenant", "policy__owner", "pk" for the
    tenant model itself), or a tuple of paths for rows that belong to several tenants (a row is visible when any
    path leads to one of the user's tenants). Paths follow forward foreign keys only.

    What a tenant admin may do is `tenant_admin_permissions` (superusers: `platform_permissions`). Their foreign-key
    and many-to-many choices are limited to their tenants' objects, list filters on relations show only values of
    visible rows, an object outside their tenants is a 404, and the `export_as_csv` action exports the selected (or
    all filtered) rows. Fields named in `secret_fields` (or whose name looks secret) never appear anywhere.
    Saves, deletes and actions should call the owning app's services; a domain error they raise becomes an error
    message instead of a server error.
    """

    tenant_field: str | tuple[str, ...] = "tenant"
    tenant_admin_permissions: frozenset[str] = PERMISSIONS
    platform_permissions: frozenset[str] = PERMISSIONS
    secret_fields: tuple[str, ...] = ()
    export_fields: Sequence[str] | None = None
    actions = ["export_as_csv"]

    def __init__(self, model: type[models.Model], admin_site: admin.AdminSite) -> None:
        super().__init__(model, admin_site)
        self._check_tenant_paths()

    # --- Scope ----------------------------------------------------------------------------------------------

    def tenant_paths(self) -> tuple[str, ...]:
        return (self.tenant_field,) if isinstance(self.tenant_field, str) else tuple(self.tenant_field)

    def _check_tenant_paths(self) -> None:
        """Refuse at start-up a path that does not lead to the tenant through forward foreign keys."""
        for path in self.tenant_paths():
            if path in ("pk", "id"):
                if self.model is not Tenant:
                    raise ImproperlyConfigured(f"{type(self).__name__}.tenant_field 'pk' is only for the Tenant model.")
                continue
            try:
                fields = get_fields_from_path(self.model, path)
            except (FieldDoesNotExist, AttributeError) as exc:
                raise ImproperlyConfigured(f"{type(self).__name__}.tenant_field {path!r}: {exc}") from exc
            forward = all(f.is_relation and (f.many_to_one or f.one_to_one) and f.concrete for f in fields)
            if not forward or fields[-1].related_model is not Tenant:
                raise ImproperlyConfigured(
                    f"{type(self).__name__}.tenant_field {path!r} must follow forward foreign keys to Tenant."
                )

    def tenant_q(self, tenant_ids: Iterable[Any]) -> Q:
        """The filter selecting rows of the given tenants."""
        ids = list(tenant_ids)
        condition = Q(pk__in=[])
        for path in self.tenant_paths():
            condition |= Q(**{f"{path}__in": ids})
        return condition

    def scope_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Restrict a queryset of this admin's model to the request user's tenants (unchanged for superusers)."""
        if is_platform_admin(request.user):
            return queryset
        return queryset.filter(self.tenant_q(admin_tenant_ids_for(request)))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return self.scope_queryset(request, super().get_queryset(request))

    def in_scope(self, request: HttpRequest, obj: models.Model) -> bool:
        """Whether the object belongs to one of the user's tenants (cached per request)."""
        if is_platform_admin(request.user) or obj.pk is None:
            return True
        cache: dict[tuple[str, Any], bool] = request.__dict__.setdefault(_SCOPE_CACHE_ATTR, {})
        key = (self.opts.label_lower, obj.pk)
        if key not in cache:
            cache[key] = self.scope_queryset(request, self.model._default_manager.filter(pk=obj.pk)).exists()
        return cache[key]

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> HttpResponse:
        """Another tenant's object (or a missing one) is a plain 404 (Django's admin would redirect instead)."""
        return not_found(request, f"No {opts.verbose_name} with this id.")

    # --- Permissions by tenant role -------------------------------------------------------------------------

    def has_tenant_permission(self, request: HttpRequest, permission: str, obj: models.Model | None = None) -> bool:
        """Superusers by `platform_permissions`; owners/admins of a tenant by `tenant_admin_permissions`, on their
        tenants' objects only. Global Django model permissions are not consulted for tenant-scoped models."""
        user = request.user
        if not (getattr(user, "is_authenticated", False) and user.is_active):
            return False
        if user.is_superuser:
            return permission in self.platform_permissions
        if permission not in self.tenant_admin_permissions or not admin_tenant_ids_for(request):
            return False
        return obj is None or self.in_scope(request, obj)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_tenant_permission(request, "view", obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_tenant_permission(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_tenant_permission(request, "change", obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_tenant_permission(request, "delete", obj)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return any(self.has_tenant_permission(request, permission) for permission in PERMISSIONS)

    # --- Choices in forms and filters -----------------------------------------------------------------------

    def related_queryset(self, request: HttpRequest, model: type[models.Model]) -> QuerySet[Any] | None:
        """The objects of `model` a tenant admin may pick in a form, or None when `model` is global data."""
        ids = admin_tenant_ids_for(request)
        if model is Tenant:
            return Tenant.objects.filter(pk__in=ids)
        if model is get_user_model():
            return model._default_manager.filter(memberships__tenant__in=ids).distinct()
        related_admin = self.admin_site._registry.get(model)
        if isinstance(related_admin, TenantScopedAdmin):
            return related_admin.scope_queryset(request, model._default_manager.all())
        try:
            field = model._meta.get_field("tenant")
        except FieldDoesNotExist:
            return None
        if field.is_relation and field.related_model is Tenant:
            return model._default_manager.filter(tenant__in=ids)
        return None

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> FormField | None:
        if not is_platform_admin(request.user) and "queryset" not in kwargs:
            queryset = self.related_queryset(request, db_field.remote_field.model)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> FormField | None:
        if not is_platform_admin(request.user) and "queryset" not in kwargs:
            queryset = self.related_queryset(request, db_field.remote_field.model)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """Add forms start with the row's tenant chosen when the user administers exactly one tenant (a value given
        in the URL wins)."""
        initial = super().get_changeform_initial_data(request)
        tenant_ids = admin_tenant_ids_for(request)
        path = self.tenant_field
        if len(tenant_ids) == 1 and isinstance(path, str) and "__" not in path and path not in ("pk", "id"):
            initial.setdefault(path, next(iter(tenant_ids)))
        return initial

    def get_list_filter(self, request: HttpRequest) -> Sequence[Any]:
        """For tenant admins, relation filters list only values found in their rows (never every tenant)."""
        list_filter = super().get_list_filter(request)
        if is_platform_admin(request.user):
            return list_filter
        scoped: list[Any] = []
        for item in list_filter:
            if isinstance(item, str):
                try:
                    fields = get_fields_from_path(self.model, item)
                except (FieldDoesNotExist, AttributeError):
                    fields = []
                if fields and fields[-1].is_relation:
                    item = (item, admin.RelatedOnlyFieldListFilter)
                elif (
                    len(fields) > 1
                    and not fields[-1].choices
                    and not isinstance(fields[-1], (models.BooleanField, models.DateField))
                ):
                    item = (item, ScopedAllValuesFieldListFilter)
            scoped.append(item)
        return scoped

    # --- Secrets never shown --------------------------------------------------------------------------------

    def secret_field_names(self) -> frozenset[str]:
        """Fields never shown, searched or exported: `secret_fields` plus fields whose name looks secret."""
        names = set(self.secret_fields)
        for field in self.opts.get_fields():
            if any(marker in field.name.lower() for marker in SECRET_FIELD_MARKERS):
                names.add(field.name)
        return frozenset(names)

    def _without_secrets(self, names: Iterable[Any]) -> list[Any]:
        secret = self.secret_field_names()
        return [name for name in names if not (isinstance(name, str) and name.split("__")[0] in secret)]

    def get_exclude(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return sorted({*(super().get_exclude(request, obj) or ()), *self.secret_field_names()})

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self._without_secrets(super().get_fields(request, obj))

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        fieldsets = []
        for name, options in super().get_fieldsets(request, obj):
            fields = [
                tuple(self._without_secrets(f)) if isinstance(f, (list, tuple)) else f
                for f in self._without_secrets(options.get("fields", ()))
            ]
            fieldsets.append((name, {**options, "fields": fields}))
        return fieldsets

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return self._without_secrets(super().get_readonly_fields(request, obj))

    def get_list_display(self, request: HttpRequest) -> list[Any]:
        return self._without_secrets(super().get_list_display(request))

    def get_search_fields(self, request: HttpRequest) -> list[Any]:
        return self._without_secrets(super().get_search_fields(request))

    # --- Export ---------------------------------------------------------------------------------------------

    def get_export_fields(self, request: HttpRequest) -> list[Any]:
        """Columns of the CSV export: `export_fields`, else the changelist's columns (secrets never)."""
        names = self.export_fields if self.export_fields is not None else self.get_list_display(request)
        return self._without_secrets(n for n in names if n != "action_checkbox")

    def _export_rows(self, request: HttpRequest, queryset: QuerySet[Any]) -> Iterator[list[str]]:
        names = self.get_export_fields(request)
        yield [str(capfirst(label_for_field(name, self.model, self))) for name in names]
        for obj in queryset.iterator(chunk_size=2000):
            row = []
            for name in names:
                field, _attr, value = lookup_field(name, obj, self)
                if field is not None and getattr(field, "flatchoices", None):
                    value = dict(field.flatchoices).get(value, value)
                row.append(_csv_cell(value))
            yield row

    @admin.action(description="Export selected %(verbose_name_plural)s as CSV", permissions=["view"])
    def export_as_csv(self, request: HttpRequest, queryset: QuerySet[Any]) -> StreamingHttpResponse:
        """Stream the selected rows (already limited to the user's tenants) as CSV."""
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in self._export_rows(request, queryset)), content_type="text/csv"
        )
        filename = f"{slugify(self.opts.verbose_name_plural)}-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response

    # --- Domain errors from services ------------------------------------------------------------------------

    def _error_redirect(self, request: HttpRequest, exc: AppError) -> HttpResponseRedirect:
        self.message_user(request, error_text(exc), messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponseBase:
        """A service refusing the save rolls the whole form back and shows its reason on the same page."""
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except AppError as exc:
            return self._error_redirect(request, exc)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponseBase:
        """An action (or bulk delete) refused by a service shows its reason instead of a server error."""
        try:
            return super().changelist_view(request, extra_context)
        except AppError as exc:
            return self._error_redirect(request, exc)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponseBase:
        try:
            return super().delete_view(request, object_id, extra_context)
        except AppError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.path.rsplit("delete/", 1)[0] + "change/")


class PlatformAdmin(admin.ModelAdmin):
    """A `ModelAdmin` for platform-wide data (no tenant): superusers only, by `platform_permissions`."""

    platform_permissions: frozenset[str] = PERMISSIONS

    def _allowed(self, request: HttpRequest, permission: str) -> bool:
        return is_platform_admin(request.user) and permission in self.platform_permissions

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "view")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self._allowed(request, "add")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._allowed(request, "delete")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_platform_admin(request.user)
