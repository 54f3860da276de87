"""`grant_credits SLUG AMOUNT [--memo TEXT] [--prepaid]`: credit a tenant (a negative amount corrects a grant)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.billing import selectors, services
from apps.tenancy.models import Tenant
from llm_infra_django.errors import AppError


class Command(BaseCommand):
    help = "Credit a tenant's prepaid balance (USD); --prepaid also makes the tenant prepaid."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("tenant", help="Slug of the tenant.")
        parser.add_argument("amount", help="USD, e.g. 25 or 0.5; negative to correct an earlier grant.")
        parser.add_argument("--memo", default="", help="Why (kept with the grant and in the audit log).")
        parser.add_argument("--prepaid", action="store_true", help="Also make the tenant prepaid.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}.")
        try:
            if options["prepaid"]:
                services.set_prepaid(tenant=tenant, prepaid=True)
            grant = services.grant_credits(tenant=tenant, amount=options["amount"], memo=options["memo"])
        except AppError as exc:
            raise CommandError(exc.message) from None
        state = selectors.balance(tenant)
        kind = "prepaid" if state["prepaid"] else "postpaid (the credit applies once it is prepaid)"
        granted, left = grant.amount_usd.normalize(), state["balance"].normalize()
        self.stdout.write(f"Granted {granted:f} USD to {tenant.slug}: balance {left:f} USD, {kind}.")
