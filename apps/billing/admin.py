"""Billing in the admin: accounts (prepaid or postpaid) and credit grants, granted through the billing services.
Tenant admins see their own; only platform staff change them."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from apps.billing import selectors, services
from apps.billing.models import BillingAccount, CreditGrant, PaymentEvent
from apps.tenancy.admin_scoping import TenantScopedAdmin

VIEW_ONLY = frozenset({"view"})


@admin.register(BillingAccount)
class BillingAccountAdmin(TenantScopedAdmin):
    """Whether a tenant is prepaid, and its balance."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = frozenset({"view", "add", "change"})
    list_display = ["tenant", "prepaid", "balance", "updated_at"]
    list_filter = ["prepaid"]
    list_select_related = ["tenant"]
    fields = ["tenant", "prepaid", "low_balance_usd", "balance"]
    readonly_fields = ["balance"]

    @admin.display(description="balance (USD)")
    def balance(self, obj: BillingAccount) -> str:
        if obj.pk is None:
            return "—"
        return f"{selectors.balance(obj.tenant)['balance'].normalize():f}"

    def save_model(self, request: HttpRequest, obj: BillingAccount, form: Any, change: bool) -> None:
        account = services.set_prepaid(tenant=obj.tenant, prepaid=obj.prepaid, actor=request.user)
        if obj.low_balance_usd != account.low_balance_usd:
            account.low_balance_usd = obj.low_balance_usd
            account.save(update_fields=["low_balance_usd", "updated_at"])
        obj.__dict__.update(account.__dict__)


class CreditGrantForm(forms.ModelForm):
    class Meta:
        model = CreditGrant
        fields = ["tenant", "amount_usd", "memo"]


@admin.register(CreditGrant)
class CreditGrantAdmin(TenantScopedAdmin):
    """Credits granted to tenants: append-only (a negative grant corrects one)."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = frozenset({"view", "add"})
    form = CreditGrantForm
    list_display = ["created_at", "tenant", "amount_usd", "source", "memo", "created_by"]
    list_filter = ["source"]
    list_select_related = ["tenant", "created_by"]
    search_fields = ["tenant__slug", "memo"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["tenant", "amount_usd", "source", "memo", "created_by", "created_at"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: CreditGrant, form: Any, change: bool) -> None:
        if change:
            return
        grant = services.grant_credits(tenant=obj.tenant, amount=obj.amount_usd, memo=obj.memo, actor=request.user)
        obj.__dict__.update(grant.__dict__)


@admin.register(PaymentEvent)
class PaymentEventAdmin(TenantScopedAdmin):
    """Stripe events as the webhook took them: credited, ignored or refused (and why). Read-only."""

    tenant_field = "tenant"
    tenant_admin_permissions = VIEW_ONLY
    platform_permissions = VIEW_ONLY
    list_display = ["received_at", "event_id", "event_type", "outcome", "tenant", "detail"]
    list_filter = ["outcome", "event_type"]
    list_select_related = ["tenant"]
    search_fields = ["event_id", "tenant__slug"]
