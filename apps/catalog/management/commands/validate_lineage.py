"""`validate_lineage [--tenant SLUG] [--json]`: check lineage graphs for orphans, dangling nodes/edges and cycles."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.catalog.selectors import validate_lineage
from apps.tenancy.models import Tenant


class Command(BaseCommand):
    help = (
        "Check the lineage graph of one tenant (or of every tenant that has one): orphans, dangling nodes and edges, "
        "edges breaking the kind rules, cycles. Exits with status 1 when a graph has a problem (orphans alone are "
        "reported but are not a problem)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="Slug of the tenant whose graph is checked (default: all).")
        parser.add_argument("--json", action="store_true", help="Print one JSON object per tenant.")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.filter(lineage_graph__isnull=False).order_by("slug")
        if options["tenant"]:
            tenants = Tenant.objects.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        failed = []
        for tenant in tenants:
            report = validate_lineage(tenant)
            if options["json"]:
                self.stdout.write(json.dumps({"tenant": tenant.slug, **report.as_dict()}))
            else:
                verdict = self.style.SUCCESS("ok") if report.ok else self.style.ERROR("PROBLEMS")
                self.stdout.write(
                    f"{tenant.slug}: {verdict} — {report.nodes} nodes, {report.edges} edges, "
                    f"{len(report.orphans)} orphans, {len(report.dangling_nodes)} dangling nodes, "
                    f"{len(report.dangling_edges)} dangling edges, {len(report.invalid_edges)} invalid edges, "
                    f"{len(report.cycle_nodes)} nodes on cycles"
                )
            if not report.ok:
                failed.append(tenant.slug)
        if failed:
            raise CommandError(f"Lineage problems in: {', '.join(failed)}.", returncode=1)
