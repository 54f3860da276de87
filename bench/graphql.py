"""The nested GraphQL query of issue 8 next to the REST calls a client needs for the same data, in one run.

    python bench/graphql.py [--services 50] [--rounds 30]

PostgreSQL (a scratch database, dropped afterwards), Django's test client in one process (no network), logging at
WARNING. Reports p50/p95 and SQL query counts of:
  - GraphQL: `services(first: N) { publisher, versions { pricing, model { model { name } evaluations } } }`, one
    request;
  - REST: GET /api/v1/services/?limit=N, then per service GET /services/{id}/versions/, GET /models/{handle}/ and
    GET /evaluations/?model={handle} (a REST client cannot follow a service version to its model: the handle is
    known here by construction, which favours REST).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `graphql` package: take its own directory off the path, put the checkout on it.
_HERE = Path(__file__).resolve()
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE.parent]
sys.path.insert(0, str(_HERE.parents[1]))

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import psycopg  # noqa: E402

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE = "bench_graphql"
NESTED = """
query($first: Int!) {
  services(first: $first) {
    totalCount
    edges { node {
      id publisher { name }
      versions { edges { node {
        version
        pricing { model inputPerMtok outputPerMtok }
        model { version model { name } evaluations { edges { node { benchmarkName score } } } }
      } } }
    } }
  }
}
"""


def recreate_database(server: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def database_url(server: str, name: str) -> str:
    return server.rsplit("/", 1)[0] + "/" + name


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed(operation: Callable[[], int], rounds: int, warmup: int) -> tuple[list[float], int]:
    """Milliseconds of each timed call, and the SQL queries of the last one (`operation` returns its count)."""
    for _ in range(warmup):
        operation()
    samples, queries = [], 0
    for _ in range(rounds):
        started = time.perf_counter()
        queries = operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples, queries


def run(args: argparse.Namespace) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from tests.support.marketplace_world import build

    call_command("migrate", verbosity=0)
    world = build(args.services, versions=args.versions, evaluations=args.evaluations)
    settings.MARKETPLACE_GATEWAY = {"MAX_DEPTH": 20, "MAX_COST": 10_000_000}  # the query is about SQL, not limits
    client = Client()
    client.force_login(world.consumer)
    handles = {str(s.pk): f"{s.publisher.slug}--model-{s.slug.split('-')[1]}" for s in world.services}

    def graphql() -> int:
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            response = client.post(
                "/graphql", {"query": NESTED, "variables": {"first": args.services}}, content_type="application/json"
            )
        body = response.json()
        assert "errors" not in body and len(body["data"]["services"]["edges"]) == args.services, str(body)[:500]
        return len(queries.captured_queries)

    def rest() -> int:
        reset_queries()
        with CaptureQueriesContext(connection) as queries:
            page = client.get(f"/api/v1/services/?limit={args.services}")
            assert page.status_code == 200, page.content[:300]
            for row in page.json()["results"]:
                service_id = str(row["service_id"] if "service_id" in row else row["id"])
                handle = handles[service_id]
                for path in (
                    f"/api/v1/services/{service_id}/versions/",
                    f"/api/v1/models/{handle}/",
                    f"/api/v1/evaluations/?model={handle}",
                ):
                    response = client.get(path)
                    assert response.status_code == 200, (path, response.content[:300])
        return len(queries.captured_queries)

    graphql_samples, graphql_queries = timed(graphql, args.rounds, args.warmup)
    rest_samples, rest_queries = timed(rest, args.rounds, args.warmup)
    g50, r50 = statistics.median(graphql_samples), statistics.median(rest_samples)
    print(
        f"{args.services} services × {args.versions} versions × {args.evaluations} evaluations; {args.rounds} timed "
        f"rounds after {args.warmup} warm-up, sequential, one process, Django test client (no network)\n"
    )
    print(f"{'':<10} {'requests':>8} {'SQL':>5} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'GraphQL':<10} {1:>8} {graphql_queries:>5} {g50:>8.1f} {percentile(graphql_samples, 0.95):>8.1f}")
    print(
        f"{'REST':<10} {1 + 3 * args.services:>8} {rest_queries:>5} {r50:>8.1f} {percentile(rest_samples, 0.95):>8.1f}"
    )
    print(f"\nGraphQL p50 / REST p50 = {g50 / r50:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--services", type=int, default=50)
    parser.add_argument("--versions", type=int, default=2)
    parser.add_argument("--evaluations", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    recreate_database(args.server, DATABASE)
    os.environ["DATABASE_URL"] = database_url(args.server, DATABASE)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        recreate_database(args.server, DATABASE, drop_only=True)


if __name__ == "__main__":
    main()
