"""Admin pages of the consumption app: API keys through the key services (secrets shown once), read-only ledger."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.consumption import preferences, services, sla, usage
from apps.consumption.models import ApiKey, Scope, SlaViolation, TenantRouting, UsageRecord, UsageRollup
from apps.tenancy.admin_scoping import TenantScopedAdmin, run_service_action
from llm_infra_django.errors import AppError

VIEW_ONLY = frozenset({"view"})
KEY_SETTINGS = (
    "name",
    "scopes",
    "allowed_models",
    "routing",
    "rpm_limit",
    "tpm_limit",
    "max_parallel",
    "budget_day_usd",
    "budget_month_usd",
    "expires_at",
)
SECRET_NOTICE = "Copy it now: it is not stored and will never be shown again."


def _shown_once(secret: str) -> SafeString:
    """The secret in a message: plain, selectable text, which `copy_secret.js` gives a Copy button."""
    return format_html('<code class="once-shown-secret">{}</code>', secret)


def _adopt(target: Any, saved: Any) -> None:
    """Make the admin's form instance the object a service saved (so the admin's log and redirect use it)."""
    target.__dict__.update(saved.__dict__)


class ModelIdsField(forms.Field):
    """Model ids typed as "acme/echo, acme/chat"."""

    def prepare_value(self, value: Any) -> Any:
        return ", ".join(value) if isinstance(value, (list, tuple)) else value

    def to_python(self, value: Any) -> list[str]:
        if isinstance(value, (list, tuple)):
            return [str(v) for v in value]
        return [] if value in self.empty_values else str(value).replace(",", " ").split()


class RoutingField(forms.JSONField):
    """Routing preferences as JSON, checked as a request's `provider` object is."""

    def clean(self, value: Any) -> Any:
        cleaned = super().clean(value)
        try:
            return preferences.clean(cleaned, "routing")
        except AppError as exc:
            fields = exc.details.get("fields") or {}
            raise forms.ValidationError(
                [f"{name}: {'; '.join(map(str, errors))}" for name, errors in fields.items()] or [exc.message]
            ) from None


class ApiKeyAddForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(
        choices=Scope.choices, widget=forms.CheckboxSelectMultiple, initial=[Scope.CONSUME]
    )
    allowed_models = ModelIdsField(required=False, help_text="Model ids, comma-separated; empty = all.")
    routing = RoutingField(
        required=False,
        initial=dict,
        help_text='Routing preferences, e.g. {"data_residency": ["FR", "DE"], "sort": "price"}; empty = none.',
    )

    class Meta:
        model = ApiKey
        fields = ["tenant", *KEY_SETTINGS]


@admin.register(ApiKey)
class ApiKeyAdmin(TenantScopedAdmin):
    """A tenant's keys: created, rotated and revoked through the key services; the secret is shown once, the hash
    never."""

    tenant_field = "tenant"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change"})
    form = ApiKeyAddForm
    list_display = [
        "name",
        "display",
        "tenant",
        "status",
        "scope_list",
        "expires_at",
        "revoked_at",
        "last_used_at",
        "created_at",
    ]
    list_filter = ["tenant"]
    search_fields = ["name", "prefix", "last4", "tenant__slug"]
    list_select_related = ["tenant"]
    actions = ["export_as_csv", "rotate_keys", "revoke_keys"]
    detail_fields = [
        "tenant",
        "display",
        "status",
        *KEY_SETTINGS,
        "revoked_at",
        "rotated_from",
        "last_used_at",
        "created_by",
        "created_at",
    ]

    class Media:
        js = ["consumption/copy_secret.js"]

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        now = timezone.now()
        if obj.revoked_at is not None:
            return "revoked"
        if obj.expires_at is not None and obj.expires_at <= now:
            return "expired"
        return "active"

    @admin.display(description="scopes")
    def scope_list(self, obj: ApiKey) -> str:
        return ", ".join(obj.scopes or [])

    def get_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return ["tenant", *KEY_SETTINGS] if obj is None else list(self.detail_fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return [] if obj is None else list(self.detail_fields)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # every field is read-only: keys change only by rotation and revocation
        data = form.cleaned_data
        key, secret = services.create_api_key(
            tenant=data["tenant"], actor=request.user, **{name: data[name] for name in KEY_SETTINGS}
        )
        _adopt(obj, key)
        self.message_user(
            request,
            format_html("New API key {}: {} — {}", key.display, _shown_once(secret), SECRET_NOTICE),
            messages.WARNING,
        )

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing related is edited here."""

    @admin.action(description="Rotate selected API keys (new secrets shown once)", permissions=["change"])
    def rotate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        def rotate(key: ApiKey) -> None:
            new, secret = services.rotate_api_key(key=key, actor=request.user)
            self.message_user(
                request,
                format_html(
                    "{}: new secret {} (key {}); the old one works until {}. {}",
                    key.name,
                    _shown_once(secret),
                    new.display,
                    f"{timezone.localtime(ApiKey.objects.get(pk=key.pk).expires_at):%Y-%m-%d %H:%M}",
                    SECRET_NOTICE,
                ),
                messages.WARNING,
            )

        run_service_action(self, request, queryset, rotate, "rotated")

    @admin.action(description="Revoke selected API keys", permissions=["change"])
    def revoke_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        run_service_action(
            self, request, queryset, lambda key: services.revoke_api_key(key=key, actor=request.user), "revoked"
        )


class ReadOnlyAdmin(TenantScopedAdmin):
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    show_full_result_count = False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        return list(self.get_fields(request, obj))


@admin.register(UsageRecord)
class UsageRecordAdmin(ReadOnlyAdmin):
    """The append-only ledger: consumers see their requests, providers the requests to their services."""

    tenant_field = ("tenant", "publisher")
    list_display = [
        "request_id",
        "started_at",
        "tenant",
        "model_id",
        "endpoint",
        "status_code",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_ms",
        "estimated",
        "usage_disputed",
        "stream",
        "provider",
        "attempts",
    ]
    list_filter = ["endpoint", "estimated", "usage_disputed", "stream"]
    search_fields = ["request_id", "model_id", "provider", "attempt_of"]
    list_select_related = ["tenant"]
    fields = [
        "request_id",
        "tenant",
        "api_key_id",
        "publisher",
        "service_version_id",
        "model_id",
        "endpoint",
        "prompt_tokens",
        "completion_tokens",
        "reported_prompt_tokens",
        "reported_completion_tokens",
        "usage_disputed",
        "cost",
        "price_snapshot",
        "latency_ms",
        "ttft_ms",
        "status_code",
        "error_code",
        "estimated",
        "stream",
        "started_at",
        "finished_at",
        "provider",
        "attempt_of",
        "attempts",
    ]


class TenantRoutingForm(forms.ModelForm):
    routing = RoutingField(
        required=False,
        initial=dict,
        help_text='e.g. {"only": ["acme/fast"], "data_residency": ["FR", "DE"], "max_price": {"prompt": 2}}.',
    )

    class Meta:
        model = TenantRouting
        fields = ["tenant", "routing"]


@admin.register(TenantRouting)
class TenantRoutingAdmin(TenantScopedAdmin):
    """A tenant's routing preferences: the defaults and restrictions its keys' calls start from (set through the
    routing service: checked, audited)."""

    tenant_field = "tenant"
    tenant_admin_permissions = frozenset({"view", "add", "change"})
    platform_permissions = frozenset({"view", "add", "change", "delete"})
    form = TenantRoutingForm
    list_display = ["tenant", "routing", "updated_at"]
    list_select_related = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "updated_at"] if obj is not None else ["updated_at"]

    def save_model(self, request: HttpRequest, obj: TenantRouting, form: Any, change: bool) -> None:
        # The form checked the preferences; the service records the change in the tenant's audit log.
        _adopt(obj, services.set_tenant_routing(tenant=obj.tenant, actor=request.user, routing=obj.routing))


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    """Daily totals per (tenant, key, service version), maintained as records are written."""

    tenant_field = ("tenant", "publisher")
    list_display = [
        "day",
        "tenant",
        "model_id",
        "requests",
        "errors",
        "disputed",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "avg_latency",
        "p95_latency",
    ]
    list_filter = ["day"]
    search_fields = ["model_id"]
    list_select_related = ["tenant"]
    fields = [
        "day",
        "tenant",
        "api_key_id",
        "publisher",
        "service_version_id",
        "model_id",
        "requests",
        "errors",
        "disputed",
        "prompt_tokens",
        "completion_tokens",
        "cost",
        "latency_sum_ms",
        "avg_latency",
        "p95_latency",
        "latency_buckets",
    ]

    @admin.display(description="avg latency (ms)")
    def avg_latency(self, obj: UsageRollup) -> float | None:
        return round(obj.latency_sum_ms / obj.requests, 1) if obj.requests else None

    @admin.display(description="p95 latency (ms)")
    def p95_latency(self, obj: UsageRollup) -> float | None:
        return usage.percentile_ms(obj.latency_buckets or [], 0.95)


@admin.register(SlaViolation)
class SlaViolationAdmin(ReadOnlyAdmin):
    """SLA breaches found by the periodic check, with each version's current SLA status; publishers see theirs."""

    tenant_field = "service_version__service__publisher"
    list_display = [
        "created_at",
        "service_version",
        "metric",
        "severity",
        "observed",
        "threshold",
        "window_start",
        "window_end",
        "current_state",
    ]
    list_filter = ["metric", "severity"]
    list_select_related = ["service_version__service__publisher"]
    fields = [
        "created_at",
        "service_version",
        "metric",
        "severity",
        "observed",
        "threshold",
        "window_start",
        "window_end",
        "current_status",
    ]

    @admin.display(description="current state")
    def current_state(self, obj: SlaViolation) -> str:
        """From the last periodic check's cache (no query per row)."""
        status = sla.get_sla_statuses([obj.service_version_id])[str(obj.service_version_id)]
        return str(status.get("state", "no_data"))

    @admin.display(description="current SLA status (last hour)")
    def current_status(self, obj: SlaViolation) -> str:
        status = sla.get_sla_status(obj.service_version_id)
        if not status.get("requests"):
            return "no traffic in the last hour"
        return (
            f"{status['state']}: {status['requests']} requests, availability {status['availability']} %, "
            f"error rate {status['error_rate']:.4%}, p50 {status['p50_ms']} ms, p95 {status['p95_ms']} ms, "
            f"p99 {status['p99_ms']} ms (max {status['max_latency_ms']} ms)"
        )
