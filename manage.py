#!/usr/bin/env python
"""Django's command line, with tracing configured first."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")
    from llm_infra_django.tracing import configure_tracing

    configure_tracing()
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
