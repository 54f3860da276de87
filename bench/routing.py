"""The cost of one routing decision, in process, as the hot path makes it: a catalog model's 20 cached routes turned
into offers with their health (from the worker's health cache, warm), filtered by a call's preferences and put in
the order of its attempts (inverse-square price weights), and the same with `sort`, `order` and restrictions. No
Django server, no network: the decision alone.

    .venv/bin/python bench/routing.py [--offers 20] [--rounds 200000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

# Run as `python bench/routing.py` from a checkout: the project on the path, and not this folder (its graphql.py
# would shadow the library).
HERE = Path(__file__).resolve().parent
sys.path[:] = [str(HERE.parent), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

import django  # noqa: E402

django.setup()

from apps.consumption import choosing, preferences, routing  # noqa: E402
from apps.consumption.health import Health, health_cache  # noqa: E402
from apps.publishing.selectors import Route  # noqa: E402


def routes(count: int) -> list[Route]:
    made = []
    for index in range(count):
        route = Route(
            model_id="acme/llama",
            version_id=f"v{index}",
            service_id=f"s{index}",
            publisher_id=f"p{index}",
            publisher_slug=f"provider{index}",
            service_slug="llama",
            version="1.0.0",
            status="active",
            protocol="openai",
            endpoint_url="https://example.com/v1",
            upstream_model="llama",
            auth_kind="none",
            upstream_secret_encrypted="",
            pricing_model="per_token",
            price_input_per_mtok=Decimal(index + 1) / 10,
            price_output_per_mtok=Decimal(index + 1) / 5,
            price_cached_input_per_mtok=None,
            price_per_request=None,
            sla_timeout_ms=30_000,
            context_length=32_768,
            category="chat",
            data_residency=("US",) if index % 2 else ("FR", "DE"),
            compliance_level="public",
        )
        made.append(route)
        health_cache.known[route.version_id] = (
            time.monotonic() + 10**9,  # fresh for the whole run: no refresh is started
            Health(
                route.version_id,
                healthy=index % 7 != 3,
                breaker="open" if index % 7 == 3 else "closed",
                p50_ms=100.0 + index,
            ),
        )
    return made


def offers_of(listed: tuple[Route, ...]) -> list[choosing.Offer]:
    """As routing.model_offers has them for each call (after its cached access checks)."""
    return routing.offers_from("acme/llama", listed)


def measure(name: str, decide, rounds: int) -> None:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        decide()
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    p50, p99 = samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000
    print(f"{name:<44}{p50:>10.1f}{p99:>10.1f}{statistics.fmean(samples) / 1000:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--offers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200_000)
    args = parser.parse_args()
    listed = tuple(routes(args.offers))
    none = frozenset()
    cases = {
        "default (price-weighted)": preferences.parse(None)[0],
        "sort: price": preferences.parse({"sort": "price"})[0],
        "sort: latency": preferences.parse({"sort": "latency"})[0],
        "order + ignore": preferences.parse({"order": ["provider5/llama"], "ignore": ["provider1/llama"]})[0],
        "residency + max_price": preferences.parse({"data_residency": ["FR", "DE"], "max_price": {"prompt": 1}})[0],
        "request narrowing key + tenant settings": None,
    }
    settings = preferences.settings_of({"data_residency": ["US", "FR", "DE"]}, {"sort": "throughput"})
    print(f"{args.offers} offers, {args.rounds} decisions each (µs)")
    print(f"{'case':<44}{'p50':>10}{'p99':>10}{'mean':>10}")
    for name, chosen in cases.items():
        if chosen is None:

            def decide() -> None:
                request, given = preferences.parse({"max_price": {"completion": 2}})
                merged = settings.narrowed_by(request, given)
                choosing.plan(choosing.allowed(offers_of(listed), merged, none), merged)

        else:

            def decide(chosen=chosen) -> None:
                choosing.plan(choosing.allowed(offers_of(listed), chosen, none), chosen)

        measure(name, decide, args.rounds)


if __name__ == "__main__":
    main()
