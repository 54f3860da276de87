"""`manage.py rollup_usage [--since DAY] [--until DAY]`: recompute daily usage rollups from the raw records."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.consumption.ledger import rebuild_rollups


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"Not a day (YYYY-MM-DD): {value!r}") from None


class Command(BaseCommand):
    help = (
        "Recompute the daily usage rollups (UTC days) from the raw usage records, e.g. after restoring records. "
        "Rollups are kept up to date as records are written; this rebuilds them. Default: the last 7 closed days."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--since", type=_day, help="First day (YYYY-MM-DD, UTC); default: 7 days ago.")
        parser.add_argument("--until", type=_day, help="Last day (YYYY-MM-DD, UTC); default: yesterday.")

    def handle(self, *args: Any, **options: Any) -> None:
        yesterday = timezone.now().date() - timedelta(days=1)
        until = options["until"] or yesterday
        since = options["since"] or until - timedelta(days=6)
        if since > until:
            raise CommandError(f"--since ({since}) is after --until ({until}).")
        rows = rebuild_rollups(since, until)
        self.stdout.write(f"Rebuilt {rows} rollup rows for {since} .. {until} (UTC).")
