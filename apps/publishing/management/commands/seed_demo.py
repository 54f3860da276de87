"""`seed_demo`: idempotent demo data (an admin, a provider with two services, a consumer) and how to use it."""

from __future__ import annotations

import os
from importlib.util import find_spec
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.publishing.management import demo
from apps.publishing.models import Status
from llm_infra_django.errors import AppError


def _describe(exc: AppError) -> str:
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    if fields:
        return "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in fields.items())
    return str(exc.message)


class Command(BaseCommand):
    help = (
        "Create the demo data if missing (idempotent): a platform admin, the provider tenant demo-provider with the "
        "services demo-provider/echo (built-in echo provider) and demo-provider/local-llm (OpenAI-compatible server "
        "at --upstream-url), the consumer tenant demo-consumer, both services visible to every tenant; then print "
        "how to log in and call them. For local use: the passwords are printed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--admin-password",
            default=os.environ.get("DEMO_ADMIN_PASSWORD", "admin"),
            help="Password of the 'admin' superuser when it is created (env DEMO_ADMIN_PASSWORD, default 'admin').",
        )
        parser.add_argument(
            "--user-password",
            default=os.environ.get("DEMO_USER_PASSWORD", "demo"),
            help="Password of 'provider' and 'consumer' when created (env DEMO_USER_PASSWORD, default 'demo').",
        )
        parser.add_argument(
            "--upstream-url",
            metavar="URL",
            default=os.environ.get("DEMO_UPSTREAM_URL") or demo.DEFAULT_UPSTREAM_URL,
            help="Base URL of the OpenAI-compatible server behind demo-provider/local-llm "
            f"(env DEMO_UPSTREAM_URL, default {demo.DEFAULT_UPSTREAM_URL}, Ollama's address).",
        )
        parser.add_argument(
            "--upstream-model",
            metavar="NAME",
            default=os.environ.get("DEMO_UPSTREAM_MODEL") or demo.DEFAULT_UPSTREAM_MODEL,
            help=f"Model name the upstream serves (env DEMO_UPSTREAM_MODEL, default {demo.DEFAULT_UPSTREAM_MODEL}).",
        )
        parser.add_argument(
            "--site-url",
            metavar="URL",
            default=os.environ.get("DEMO_SITE_URL") or "http://127.0.0.1:8000",
            help="Where the marketplace is served, for the printed examples (env DEMO_SITE_URL).",
        )
        parser.add_argument(
            "--wait",
            type=float,
            default=30.0,
            metavar="SECONDS",
            help="How long to wait for the publishing pipeline when a Celery worker runs it (default 30).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("upstream_url", "site_url"):
            if not str(options[name]).startswith(("http://", "https://")):
                raise CommandError(f"--{name.replace('_', '-')} must be an http(s) URL, not {options[name]!r}.")
        try:
            result = demo.seed(
                admin_password=options["admin_password"],
                user_password=options["user_password"],
                upstream_url=options["upstream_url"].rstrip("/"),
                upstream_model=options["upstream_model"],
                wait_seconds=options["wait"],
            )
        except AppError as exc:
            raise CommandError(f"seed_demo could not complete: {_describe(exc)}") from exc
        if options["verbosity"] >= 1:
            self._report(result, options)

    def _report(self, result: demo.SeedResult, options: dict[str, Any]) -> None:
        out, style = self.stdout.write, self.style
        site = options["site_url"].rstrip("/")
        out(style.MIGRATE_HEADING("Demo data") + " (seed_demo is idempotent: run it again at any time)")
        for change in result.changes or ["nothing to do: everything was already there"]:
            out(f"  - {change}")
        for note in result.notes:
            out(style.WARNING(f"  ! {note}"))

        out(style.MIGRATE_HEADING(f"\nLog in at {site}/admin/"))
        passwords = {
            demo.ADMIN_USERNAME: options["admin_password"],
            demo.PROVIDER_USERNAME: options["user_password"],
            demo.CONSUMER_USERNAME: options["user_password"],
        }
        roles = {
            demo.ADMIN_USERNAME: "platform administrator (superuser)",
            demo.PROVIDER_USERNAME: f"owner of tenant {demo.PROVIDER_SLUG} (publishes the demo services)",
            demo.CONSUMER_USERNAME: f"owner of tenant {demo.CONSUMER_SLUG} (consumes them)",
        }
        for username, (_user, _created, matches) in result.users.items():
            password = passwords[username] if matches else "(existing password kept)"
            out(f"  {username:<9} {password:<12} {roles[username]}")
        if any(matches for _user, _created, matches in result.users.values()):
            self.stderr.write(
                style.WARNING(
                    "WARNING: these demo users and passwords are for local use only; never run seed_demo on a "
                    "server reachable by others (or set --admin-password / DEMO_ADMIN_PASSWORD)."
                )
            )

        out(style.MIGRATE_HEADING("\nModels (public, no approval needed: every tenant can call them)"))
        for outcome in result.services.values():
            version = outcome.version
            where = version.endpoint_url or "built in"
            line = f"  {outcome.model_id:<25} {version.version:<7} {version.status:<18} {where}"
            out(style.SUCCESS(line) if version.status == Status.ACTIVE else style.WARNING(line))
            if outcome.problem:
                out(f"      {outcome.problem}")
                out(
                    "      Start an OpenAI-compatible server there (e.g. `ollama serve`) or pass --upstream-url URL, "
                    "then run seed_demo again (the command itself succeeded)."
                )

        echo_id = f"{demo.PROVIDER_SLUG}/{demo.ECHO_SLUG}"
        out(style.MIGRATE_HEADING("\nAPI key"))
        out(
            f"  export KEY=$(.venv/bin/python manage.py create_api_key --tenant {demo.CONSUMER_SLUG} "
            "--scopes consume,read --rpm 60 --tpm 100000 | tail -n 1)"
        )
        out("  (the secret is printed once, on the last line; the examples below read it from $KEY)")
        out(style.MIGRATE_HEADING("\ncurl"))
        out(f"  curl {site}/v1/chat/completions \\")
        out('    -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \\')
        out(f'    -d \'{{"model": "{echo_id}", "messages": [{{"role": "user", "content": "Hello!"}}]}}\'')
        # The SDK is in the repository's .venv (requirements/dev.txt), not among the wheel's dependencies.
        install = "already installed" if find_spec("openai") else "first: .venv/bin/python -m pip install openai"
        out(style.MIGRATE_HEADING(f"\nOpenAI SDK ({install}): save as hello.py, run .venv/bin/python hello.py"))
        out("  import os")
        out("  from openai import OpenAI")
        out(f'  client = OpenAI(base_url="{site}/v1", api_key=os.environ["KEY"])')
        out(
            f'  reply = client.chat.completions.create(model="{echo_id}", '
            'messages=[{"role": "user", "content": "Hello!"}])'
        )
        out("  print(reply.choices[0].message.content)  # Echo: Hello!")
