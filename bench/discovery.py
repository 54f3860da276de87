"""Discovery latency on PostgreSQL with 10 000 services: the API through Django's test client next to bare psycopg."""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse, urlunparse

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/discovery.py` from a checkout

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"
DATABASE = "bench_discovery"
CATEGORIES = [
    "text-generation",
    "chat",
    "embeddings",
    "classification",
    "summarization",
    "translation",
    "question-answering",
    "code-generation",
    "other",
]
WORDS = [
    *(
        [
            "fast",
            "accurate",
            "multilingual",
            "legal",
            "medical",
            "financial",
            "creative",
            "concise",
            "reliable",
            "private",
            "open",
            "efficient",
        ]
    ),
    *(
        [
            "instruct",
            "tuned",
            "distilled",
            "quantized",
            "long",
            "context",
            "streaming",
            "vision",
            "speech",
            "french",
            "german",
            "spanish",
        ]
    ),
    *(
        [
            "python",
            "rust",
            "sql",
            "contracts",
            "invoices",
            "support",
            "tickets",
            "reviews",
            "news",
            "research",
            "science",
            "education",
            "retail",
        ]
    ),
]
ROW_COLUMNS = (
    "v.id, v.version, v.status, v.name, v.description, v.category, v.tags, v.capabilities, v.endpoint_url, "
    "v.protocol, v.upstream_model, v.auth_kind, v.pricing_model, v.price_input_per_mtok, v.price_output_per_mtok, "
    "v.price_cached_input_per_mtok, v.price_per_request, v.currency, v.sla_availability, v.sla_max_latency_ms, "
    "v.sla_timeout_ms, v.support_level, v.compliance_level, v.certifications, v.data_residency, v.gdpr_compliant, "
    "v.hipaa_compliant, v.context_length, v.modalities, v.published_at, v.deprecated_at, v.updated_at, "
    "s.id, s.slug, t.id, t.slug, t.name"
)
SERVICE_ID_COLUMN = ROW_COLUMNS.split(", ").index("s.id")
# The latest active version of services no private/tenant-only policy hides (the consumer holds no grant).
LATEST_ACTIVE = (
    "v.status = 'active' AND NOT EXISTS (SELECT 1 FROM publishing_serviceversion u WHERE u.service_id = v.service_id "
    "AND u.status = 'active' AND (u.major, u.minor, u.patch) > (v.major, v.minor, v.patch)) "
    "AND NOT EXISTS (SELECT 1 FROM tenancy_sharingpolicy p WHERE p.resource_type = 'service' "
    "AND p.resource_id = v.service_id::text AND p.visibility IN ('private', 'tenant'))"
)
FROM = (
    "FROM publishing_serviceversion v JOIN publishing_service s ON s.id = v.service_id "
    "JOIN tenancy_tenant t ON t.id = s.publisher_id"
)
TSV = "to_tsvector('english'::regconfig, v.search_document)"
TSQ = "websearch_to_tsquery('english'::regconfig, %(q)s)"


def database_url(server: str, name: str) -> str:
    parsed = urlparse(server)
    return urlunparse(parsed._replace(path=f"/{name}"))


def recreate_database(server: str, name: str, *, drop_only: bool = False) -> None:
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(operation: Callable[[], Any], rounds: int, warmup: int) -> list[float]:
    """Milliseconds of each of `rounds` sequential calls after `warmup` untimed ones."""
    for _ in range(warmup):
        operation()
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        operation()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def seed(services: int, publishers: int, rng: random.Random) -> Any:
    """Publishers, a consumer, `services` services (10 % with an older active version, 5 % with a newer draft,
    2 % private); returns the consumer's user."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from apps.publishing.models import Service, ServiceVersion
    from apps.tenancy.models import Membership, Role, SharingPolicy, Tenant, TenantStatus

    tenants = Tenant.objects.bulk_create(
        [Tenant(name=f"Publisher {i}", slug=f"pub-{i}", status=TenantStatus.ACTIVE) for i in range(publishers)]
    )
    consumer = Tenant.objects.create(name="Consumer", slug="consumer", status=TenantStatus.ACTIVE)
    user = get_user_model().objects.create_user(username="bench-consumer", password=uuid.uuid4().hex)
    Membership.objects.create(tenant=consumer, user=user, role=Role.OWNER)
    now = timezone.now()
    service_rows = [
        Service(publisher=tenants[i % publishers], slug=f"service-{i:05d}", created_at=now) for i in range(services)
    ]
    Service.objects.bulk_create(service_rows, batch_size=2000)
    versions = []
    for index, service in enumerate(service_rows):
        numbers = [(1, 0, 0)]
        if index % 10 == 0:
            numbers.append((1, 1, 0))
        for position, (major, minor, patch) in enumerate(numbers):
            versions.append(_version(service, major, minor, patch, "active", now - timedelta(minutes=index), rng))
            if position == 0 and len(numbers) > 1:
                versions[-1].published_at -= timedelta(days=30)
        if index % 20 == 0:
            versions.append(_version(service, 2, 0, 0, "draft", None, rng))
    ServiceVersion.objects.bulk_create(versions, batch_size=2000)
    SharingPolicy.objects.bulk_create(
        [
            SharingPolicy(
                owner_id=service.publisher_id,
                resource_type="service",
                resource_id=str(service.pk),
                visibility="private",
            )
            for service in service_rows[::50]
        ]
    )
    return user


def _version(service: Any, major: int, minor: int, patch: int, status: str, published: Any, rng: random.Random) -> Any:
    from apps.publishing.models import ServiceVersion

    category = rng.choice(CATEGORIES)
    words = rng.sample(WORDS, 6)
    tags = [category, *rng.sample(WORDS, 2)]
    residency = rng.sample(["US", "FR", "DE", "GB", "JP", "CA"], 2)
    per_request = rng.random() < 0.2
    version = ServiceVersion(
        service=service,
        version=f"{major}.{minor}.{patch}",
        major=major,
        minor=minor,
        patch=patch,
        status=status,
        published_at=published,
        name=f"{words[0].title()} {category.replace('-', ' ').title()} {service.slug[-5:]}",
        description=f"A {' '.join(words)} model for {category.replace('-', ' ')} workloads.",
        category=category,
        tags=tags,
        capabilities=[{"name": category, "description": "", "parameters": {}}],
        protocol="echo",
        upstream_model="echo-1",
        pricing_model="per_request" if per_request else "per_token",
        price_input_per_mtok=None if per_request else Decimal(rng.randint(1, 500)) / 100,
        price_output_per_mtok=None if per_request else Decimal(rng.randint(1, 900)) / 100,
        price_per_request=Decimal(rng.randint(1, 100)) / 1000 if per_request else None,
        sla_availability=Decimal(rng.choice(["99", "99.5", "99.9", "99.95"])),
        sla_max_latency_ms=rng.choice([200, 500, 1000, 3000]),
        compliance_level=rng.choice(["public", "public", "internal", "confidential"]),
        data_residency=residency,
        gdpr_compliant=True,
        context_length=rng.choice([4096, 8192, 32768, 131072]),
        modalities=["text"],
    )
    # bulk_create skips save(): fill the derived search and filter columns the same way ServiceVersion.save() does.
    version.search_document = " ".join([version.name, version.description, " ".join(tags)])
    version.tags_index = "," + ",".join(t.lower() for t in tags) + ","
    version.residency_index = "," + ",".join(residency) + ","
    return version


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default=os.environ.get("BENCH_POSTGRES_URL", DEFAULT_SERVER))
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--publishers", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200, help="timed requests per scenario")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help=f"keep the {DATABASE} database afterwards")
    args = parser.parse_args()

    recreate_database(args.server, DATABASE)
    url = database_url(args.server, DATABASE)
    os.environ["DATABASE_URL"] = url
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one log line per request would measure the terminal
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.test")
    try:
        run(args, url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            recreate_database(args.server, DATABASE, drop_only=True)


def search_scenario(text: str, category: str) -> tuple[str, dict[str, Any], str, str, dict[str, str]]:
    where = f"{LATEST_ACTIVE} AND v.category = %(category)s AND {TSV} @@ {TSQ}"
    return (
        f"search={text}&category={category}",
        {"search": text, "category": category},
        f"SELECT {ROW_COLUMNS}, ts_rank({TSV}, {TSQ}) AS rank {FROM} WHERE {where} "
        "ORDER BY rank DESC, v.published_at DESC NULLS LAST, v.created_at DESC, v.id LIMIT 20",
        f"SELECT v.category, v.pricing_model, v.compliance_level, count(*) {FROM} WHERE {where} GROUP BY 1, 2, 3",
        {"q": text, "category": category},
    )


FACETS_SQL = (
    f"SELECT v.category, v.pricing_model, v.compliance_level, count(*) {FROM} WHERE {LATEST_ACTIVE} GROUP BY 1, 2, 3"
)
PRICE = (
    "CASE WHEN v.pricing_model = 'per_token' THEN v.price_input_per_mtok WHEN v.pricing_model = 'per_request' "
    "THEN v.price_per_request WHEN v.pricing_model = 'free' THEN 0 END"
)
SCENARIOS = [
    # A word every translation service carries (its category is a tag): the whole category matches.
    search_scenario("translation", "translation"),
    # Two rarer words: a few dozen matches, where the GIN index pays.
    search_scenario("legal contracts", "translation"),
    (
        "limit=100 (newest)",
        {"limit": 100},
        f"SELECT {ROW_COLUMNS} {FROM} WHERE {LATEST_ACTIVE} "
        "ORDER BY v.published_at DESC NULLS LAST, v.created_at DESC, v.id LIMIT 100",
        FACETS_SQL,
        {},
    ),
    (
        "limit=100&offset=5000&sort=price",
        {"limit": 100, "offset": 5000, "sort": "price"},
        f"SELECT {ROW_COLUMNS} {FROM} WHERE {LATEST_ACTIVE} ORDER BY {PRICE} ASC NULLS LAST, "
        "v.published_at DESC NULLS LAST, v.created_at DESC, v.id LIMIT 100 OFFSET 5000",
        FACETS_SQL,
        {},
    ),
]


def run(args: argparse.Namespace, url: str) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, reset_queries
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    user = seed(args.services, args.publishers, random.Random(42))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(f"seeded {args.services} services in {time.perf_counter() - started:.1f} s (PostgreSQL, {DATABASE})")
    print(
        f"{args.rounds} timed requests per row after {args.warmup} warm-up ones, sequential, one process; Django test "
        "client (no network), logging at WARNING, no tracing; bare = psycopg on its own connection, same process\n"
    )
    client = Client()
    client.force_login(user)
    header = (
        f"{'GET /api/v1/services/?':<34} {'rows':>4} {'count':>5} {'SQL':>3} {'API p50':>8} {'API p95':>8} "
        f"{'bare p50':>8} {'bare p95':>8} {'ratio':>6} {'bare+facets':>11} {'ratio':>6} {'GIN':>4} {'prepared':>10}"
    )
    print(header)
    print("-" * len(header))
    # Like Django's own connections: client-side binding, no server-side prepared statements (a prepared
    # statement's generic plan can differ; see the last column).
    with psycopg.connect(url, prepare_threshold=None) as bare, psycopg.connect(url) as prepared:
        for title, query, page_sql, facets_sql, params in SCENARIOS:
            path = "/api/v1/services/?" + urlencode(query)
            response = client.get(path)
            assert response.status_code == 200, response.content[:500]
            body = response.json()
            reset_queries()  # each request resets the log when it starts: capture from an empty one
            with CaptureQueriesContext(connection) as queries:
                client.get(path)
            query_count = len(queries.captured_queries)  # read now: later requests reset the log
            api = measure(lambda path=path: client.get(path), args.rounds, args.warmup)
            rows = bare.execute(page_sql, params).fetchall()
            assert [str(r[SERVICE_ID_COLUMN]) for r in rows] == [row["id"] for row in body["results"]], "pages differ"
            page = measure(lambda s=page_sql, p=params: bare.execute(s, p).fetchall(), args.rounds, args.warmup)

            def both(s: str = page_sql, f: str = facets_sql, p: dict[str, str] = params) -> None:
                bare.execute(f, p).fetchall()
                bare.execute(s, p).fetchall()

            combined = measure(both, args.rounds, args.warmup)
            generic = measure(lambda s=page_sql, p=params: prepared.execute(s, p).fetchall(), args.rounds, args.warmup)
            plan = " ".join(row[0] for row in bare.execute("EXPLAIN " + page_sql, params).fetchall())
            gin = "yes" if "publishing_version_fts" in plan else ("no" if "search" in query else "-")
            api50, page50, both50, generic50 = (statistics.median(x) for x in (api, page, combined, generic))
            print(
                f"{title:<34} {len(body['results']):>4} {body['count']:>5} {query_count:>3} "
                f"{api50:>6.1f}ms {percentile(api, 0.95):>6.1f}ms {page50:>6.1f}ms {percentile(page, 0.95):>6.1f}ms "
                f"{api50 / page50:>5.1f}x {both50:>9.1f}ms {api50 / both50:>5.1f}x {gin:>4} {generic50:>8.1f}ms"
            )
    print(
        "\nSQL: queries of one API request (session, user, tenant, memberships, hiding policies, facets+count, page). "
        "bare: the page SELECT alone; bare+facets: the page and facet SELECTs (what the API runs besides auth). "
        "GIN: the bare search plan uses publishing_version_fts. prepared: p50 of the bare page as a psycopg prepared "
        "statement (its generic plan)."
    )


if __name__ == "__main__":
    main()
