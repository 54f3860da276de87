"""`create_tenant SLUG [--name NAME] [--tier TIER] [--owner USERNAME]`: create a tenant through the service."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.tenancy import services
from apps.tenancy.models import Tier
from llm_infra_django.errors import AppError


def _describe(exc: AppError) -> str:
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    if fields:
        return "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in fields.items())
    return str(exc.message)


class Command(BaseCommand):
    help = "Create a tenant (in trial, or active with --trial-days 0); --owner makes an existing user its owner."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="3-63 lower-case letters, digits and single hyphens.")
        parser.add_argument("--name", help="Display name (default: the slug).")
        parser.add_argument("--tier", help=f"One of {', '.join(Tier.values)} (default: the configured default tier).")
        parser.add_argument("--owner", metavar="USERNAME", help="Username of an existing user who becomes the owner.")
        parser.add_argument("--region", default="", help="Region of the tenant (e.g. eu).")
        parser.add_argument("--timezone", default="UTC", help="IANA time zone for quota periods (default UTC).")
        parser.add_argument("--trial-days", type=int, default=None, help="Days in trial (0 = start active).")

    def handle(self, *args: Any, **options: Any) -> str:
        owner = None
        if options["owner"]:
            owner = get_user_model().objects.filter(username=options["owner"]).first()
            if owner is None:
                raise CommandError(f"No user named {options['owner']!r}: create the user first (createsuperuser).")
        if options["tier"] and options["tier"] not in Tier.values:
            raise CommandError(f"Unknown tier {options['tier']!r}: use one of {', '.join(Tier.values)}.")
        try:
            tenant = services.create_tenant(
                name=options["name"] or options["slug"],
                slug=options["slug"],
                owner=owner,
                tier=options["tier"],
                region=options["region"],
                timezone_name=options["timezone"],
                trial_days=options["trial_days"],
            )
        except AppError as exc:
            raise CommandError(f"Cannot create tenant {options['slug']!r}: {_describe(exc)}") from exc
        if options["verbosity"] >= 1:
            owned = f", owner {owner.get_username()}" if owner else ", no owner"
            self.stderr.write(f"Created tenant {tenant.slug} ({tenant.tier}, {tenant.status}{owned}).")
        return f"{tenant.slug} {tenant.pk}"
