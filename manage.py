#!/usr/bin/env python
"""Django's command line, with tracing configured first."""

import os
import sys


def settings_module_from_argv(argv: list[str]) -> str | None:
    """The value of `--settings` on the command line (Django parses it later than tracing needs it)."""
    for index, arg in enumerate(argv):
        if arg.startswith("--settings="):
            return arg.split("=", 1)[1]
        if arg == "--settings" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def main() -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = (
        settings_module_from_argv(sys.argv) or os.environ.get("DJANGO_SETTINGS_MODULE") or "settings.dev"
    )
    from llm_infra_django.tracing import configure_tracing

    configure_tracing()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
