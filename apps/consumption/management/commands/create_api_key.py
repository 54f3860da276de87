"""`create_api_key --tenant SLUG ...`: create an API key and print its secret (alone, on the last line)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.consumption.services import create_api_key
from apps.tenancy.models import Tenant
from llm_infra_django.errors import AppError


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise CommandError(f"{value!r} is not a whole number.") from None
    if number < 1:
        raise CommandError(f"{value!r} must be at least 1.")
    return number


def _usd(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise CommandError(f"{value!r} is not an amount in USD.") from None
    if amount <= 0:
        raise CommandError(f"{value!r} must be more than 0.")
    return amount


class Command(BaseCommand):
    help = "Create an API key for a tenant and print its secret (shown once) on the last line."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="Tenant slug.")
        parser.add_argument(
            "--user",
            help="Username recorded as the key's creator (must be a tenant admin); the key then acts with their "
            "current role. Without it, the key is the tenant's service account (an admin, narrowed by its scopes).",
        )
        parser.add_argument("--name", default="cli", help="A name for the key.")
        parser.add_argument("--scopes", default="consume", help="Comma-separated: consume,read,publish,admin.")
        parser.add_argument("--models", default="", help="Comma-separated model ids the key may use (default all).")
        parser.add_argument("--rpm", type=_positive_int, help="Requests per minute.")
        parser.add_argument("--tpm", type=_positive_int, help="Tokens per minute.")
        parser.add_argument("--max-parallel", type=_positive_int, help="Requests in flight at once.")
        parser.add_argument("--budget-day", type=_usd, help="USD per UTC day.")
        parser.add_argument("--budget-month", type=_usd, help="USD per UTC month.")
        parser.add_argument("--expires-in-days", type=_positive_int, help="Days until the key expires.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        actor = None
        if options["user"]:
            actor = get_user_model().objects.filter(username=options["user"]).first()
            if actor is None:
                raise CommandError(f"No user named {options['user']!r}.")
        days = options["expires_in_days"]
        try:
            key, secret = create_api_key(
                tenant=tenant,
                actor=actor,
                name=options["name"],
                scopes=[s.strip() for s in options["scopes"].split(",") if s.strip()],
                allowed_models=[m.strip() for m in options["models"].split(",") if m.strip()],
                expires_at=timezone.now() + timedelta(days=days) if days else None,
                rpm_limit=options["rpm"],
                tpm_limit=options["tpm"],
                max_parallel=options["max_parallel"],
                budget_day_usd=options["budget_day"],
                budget_month_usd=options["budget_month"],
            )
        except AppError as error:
            raise CommandError(f"{error.message} {error.details or ''}".strip()) from None
        self.stderr.write(f"Created key {key.display} ({key.pk}) for tenant {tenant.slug}; the secret is shown once:")
        self.stdout.write(secret)
