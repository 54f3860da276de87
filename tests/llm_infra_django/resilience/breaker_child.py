"""Run in a separate OS process by the breaker tests: act on a Redis-backed breaker and print what it saw as JSON."""

from __future__ import annotations

import json
import os
import sys


def main(name: str, redis_url: str, action: str) -> dict[str, object]:
    """`fail`: record failures until the circuit opens; `call`: try one call and report whether it was admitted."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.llm_infra_django.settings")
    import django

    django.setup()

    import httpx
    from django.test import override_settings

    from llm_infra_django.errors import CircuitOpenError
    from llm_infra_django.resilience import breaker

    def refused_connection() -> None:
        raise httpx.ConnectError("connection refused")

    with override_settings(LLM_INFRA={"TRACING": {"ENABLED": False}, "REDIS_URL": redis_url}):
        circuit = breaker(name)
        report: dict[str, object] = {"pid": os.getpid()}
        if action == "fail":
            failures = 0
            while circuit.state().value == "closed" and failures < 50:
                try:
                    circuit.call(refused_connection)
                except httpx.ConnectError:
                    failures += 1
            report["failures"] = failures
        else:
            try:
                circuit.call(lambda: None)
                report["admitted"] = True
            except CircuitOpenError as exc:
                report["admitted"] = False
                report["retry_after"] = exc.retry_after
        report["state"] = circuit.state().value
        return report


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4])))
