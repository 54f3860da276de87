"""The private cluster of a fault test module: its own Redis and PostgreSQL (killed at will), two ASGI processes of
the project on them, optionally a Celery worker with beat, and a local OpenAI-compatible upstream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.support.accounting import Books
from tests.support.cluster import LocalUpstream, PostgresCluster, Project, RedisServer, WebServer, private_cluster

SETTINGS = "tests.faults.settings"
# Thousands of client calls: their one-line INFO logs would drown a failure's report.
logging.getLogger("httpx").setLevel(logging.WARNING)


@dataclass
class Cluster:
    redis: RedisServer
    postgres: PostgresCluster
    project: Project
    upstream: LocalUpstream
    database: str
    servers: list[WebServer]
    books: Books
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def build(self, services: Sequence[dict[str, Any]], keys: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Services (`slug`, optional `upstream_url` — the cluster's upstream by default — and `sla_timeout_ms`) and
        keys (limits) made by the project's services in one process."""
        specs = [{"upstream_url": self.upstream.url, **spec} for spec in services]
        return self.project.call("tests.support.cluster_world:build", services=specs, keys=list(keys))


@contextlib.contextmanager
def fault_cluster(name: str, *, web: Sequence[dict[str, str]] = ({}, {}), worker: bool = False) -> Iterator[Cluster]:
    """Start everything (web processes with their extra environment each), tear everything down on exit."""
    database = f"faults_{name}"
    upstream = LocalUpstream().start()
    try:
        with private_cluster(database, settings=SETTINGS) as (redis, postgres, project):
            servers = [WebServer({**project.env, **extra}).start() for extra in web]
            project.servers.extend(servers)
            for server in servers:
                server.wait()
            if worker:
                project.start_worker(beat=True, name=name)
            client = redis.client()
            try:
                yield Cluster(
                    redis=redis,
                    postgres=postgres,
                    project=project,
                    upstream=upstream,
                    database=database,
                    servers=servers,
                    books=Books(postgres, database, client),
                )
            finally:
                client.close()
    finally:
        upstream.stop()


def graphql(url: str, secret: str, query: str = "{ __typename }") -> httpx.Response:
    return httpx.post(
        f"{url}/graphql", json={"query": query}, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


def assert_served_or_unavailable(outcomes: Any, code: str | None = None) -> None:
    """Every answer was a complete success or an OpenAI-shaped 503: no 500, no HTML, no dropped connection."""
    for outcome in outcomes:
        if not outcome.ok:
            assert_openai_error(outcome, 503, code)
    assert all(o.completed for o in outcomes if o.ok)


def assert_openai_error(outcome: Any, status: int, code: str | None = None) -> None:
    """An error in OpenAI's shape (what SDKs parse), never an HTML page or a bare 500."""
    assert outcome.status == status, (outcome.status, outcome.body, outcome.error)
    assert isinstance(outcome.body, dict) and isinstance(outcome.body.get("error"), dict), outcome.body
    error = outcome.body["error"]
    assert {"message", "type", "code"} <= set(error), error
    if code is not None:
        assert error["code"] == code, error
    if status in (429, 503):
        assert float(outcome.headers["retry-after"]) > 0, outcome.headers
