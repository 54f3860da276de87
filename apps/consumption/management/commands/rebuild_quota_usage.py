"""`manage.py rebuild_quota_usage [--tenant SLUG ...]`: the current periods' quota counters, again from the ledger."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.consumption.ledger import rebuild_quota_usage
from apps.tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Set the durable quota counters (requests, tokens, spend) of the current periods to what the usage records "
        "sum to, and drop the matching Redis counters and key budgets so admission seeds them again: counters then "
        "equal the ledger exactly (e.g. after upgrading from micro-dollar counters). Default: every tenant. A call in "
        "flight while it runs is counted once less until its period ends: run it when traffic is quiet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", action="append", default=[], help="Slug of a tenant (repeatable).")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug__in=options["tenant"])
            missing = set(options["tenant"]) - set(tenants.values_list("slug", flat=True))
            if missing:
                raise CommandError(f"No such tenant: {', '.join(sorted(missing))}")
        for slug, counters in rebuild_quota_usage(tenants).items():
            figures = ", ".join(f"{name} {units}" for name, units in counters.items())
            self.stdout.write(f"{slug}: {figures} (spend in 10⁻¹⁰ USD)")
