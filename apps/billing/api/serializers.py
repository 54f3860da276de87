"""Shapes of the billing REST API."""

from __future__ import annotations

from rest_framework import serializers

from apps.tenancy.api.serializers import PlainDecimalField


class BalanceSerializer(serializers.Serializer):
    tenant = serializers.SlugField(read_only=True)
    prepaid = serializers.BooleanField(
        read_only=True, help_text="Prepaid: calls are admitted only while their reservation fits the balance."
    )
    currency = serializers.CharField(read_only=True)
    credited = PlainDecimalField(read_only=True, help_text="Every credit received (grants and payments), USD.")
    billed = PlainDecimalField(read_only=True, help_text="What the tenant's recorded calls cost, ever, USD.")
    balance = PlainDecimalField(read_only=True, help_text="credited − billed (calls in flight are not in it yet).")
