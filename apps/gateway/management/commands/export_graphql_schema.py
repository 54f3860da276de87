"""`export_graphql_schema [--out FILE]`: write the GraphQL schema (SDL); CI compares it with the committed one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from graphql import print_schema


def schema_sdl() -> str:
    """The SDL of the project's schema (`GRAPHENE["SCHEMA"]`)."""
    from graphene_django.settings import graphene_settings

    return print_schema(graphene_settings.SCHEMA.graphql_schema) + "\n"


class Command(BaseCommand):
    help = "Print the GraphQL schema in SDL, or write it to --out."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", help=f"File to write (e.g. {Path(settings.BASE_DIR) / 'schema.graphql'}).")

    def handle(self, *args: Any, **options: Any) -> None:
        sdl = schema_sdl()
        if options["out"]:
            Path(options["out"]).write_text(sdl)
            self.stderr.write(f"wrote {options['out']}")
        else:
            self.stdout.write(sdl, ending="")
