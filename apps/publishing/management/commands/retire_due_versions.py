"""`manage.py retire_due_versions`: retire deprecated versions whose grace period is over."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.publishing.services import retire_due_versions


class Command(BaseCommand):
    help = "Retire deprecated service versions past their grace period (also a periodic Celery task)."

    def handle(self, *args: Any, **options: Any) -> None:
        retired = retire_due_versions()
        self.stdout.write(f"Retired {retired} version(s).")
