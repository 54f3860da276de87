"""The soak with exact accounting, shared by `bench/soak.py` (minutes) and `tests/soak/test_soak.py` (about a minute):
a private cluster (Redis, PostgreSQL, two uvicorn processes, a Celery worker with beat, a local OpenAI-compatible
upstream, all from `tests.support.cluster`), many concurrent clients discovering, publishing, rotating keys and
calling the proxy (streamed and not, with budgets and quotas that refuse some calls), then the books: the ledger
equals what the clients saw, rollups equal raw rows, no limit exceeded, no secret in any log, RSS per process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tests.support.accounting import Books, units
from tests.support.cluster import LOG_DIR, LocalUpstream, Project, WebServer, private_cluster
from tests.support.traffic import Outcome, call, chat_body

SETTINGS = "tests.soak.settings"
DATABASE = "soak"
WORKER_NAME = "soak"
SECRET_PATTERN = re.compile(r"mk_[A-Za-z0-9_\-]{20,}")

# Keys of the consumer tenants (labels → limits); the clients pick them with these weights.
KEY_WEIGHTS = {
    "open": 30,  # no limit
    "rotating": 20,  # rotated every `rotate_every` seconds; its clients switch to the new secret
    "rotating-old": 5,  # the secret just replaced, still inside its grace period
    "budget": 10,  # a small daily budget: 402 once spent
    "rpm": 10,  # a low requests-per-minute limit: 429
    "parallel": 10,  # one call at a time: 429 when busy
    "quota-requests": 8,  # tenant "initech": an api_requests quota (block)
    "quota-spend": 7,  # tenant "umbrella": a spend_usd quota (block)
}
BUDGET_DAY_USD = Decimal("0.5")
QUOTAS = {"initech": {"api_requests": 80}, "umbrella": {"spend_usd": Decimal("1.5")}}
REFUSED = (402, 429)
# Thousands of client calls: their one-line INFO logs would drown a failure's report.
logging.getLogger("httpx").setLevel(logging.WARNING)


# --- the data, made in a process set up on the cluster's settings (Project.call) ----------------------------------


def build_world(*, upstream_url: str) -> dict[str, Any]:
    """The seed service, the consumer keys with their limits, tenant quotas, an admin key (rotation) and a publish
    key of the provider (publishing through REST)."""
    from apps.tenancy.models import QuotaAction, QuotaOverride
    from apps.tenancy.quotas import invalidate_limits
    from tests.support import cluster_world

    service = cluster_world.publish(upstream_url=upstream_url, slug="soak-chat")
    for slug, limits in QUOTAS.items():
        tenant = cluster_world._tenant(slug)
        for quota_type, limit in limits.items():
            QuotaOverride.objects.update_or_create(
                tenant=tenant, quota_type=quota_type, defaults={"limit": limit, "action": QuotaAction.BLOCK}
            )
        invalidate_limits(tenant)
    keys = {
        "open": cluster_world.make_key(),
        "rotating": cluster_world.make_key(),
        "budget": cluster_world.make_key(budget_day_usd=str(BUDGET_DAY_USD)),
        "rpm": cluster_world.make_key(rpm_limit=20),
        "parallel": cluster_world.make_key(max_parallel=1),
        "quota-requests": cluster_world.make_key(tenant="initech"),
        "quota-spend": cluster_world.make_key(tenant="umbrella"),
        "admin": cluster_world.make_key(scopes=["admin"]),
        "publisher": cluster_world.make_key(tenant="acme", scopes=["publish", "read"]),
    }
    return {"model": service["model"], "keys": keys}


def service_definition(upstream_url: str, version: str, slug: str | None = None) -> dict[str, Any]:
    """A definition for the REST publishing API on the local upstream (other prices than the seed service)."""
    definition: dict[str, Any] = {
        "version": version,
        "name": "Soak Chat",
        "description": "A service published by the soak's provider client.",
        "category": "chat",
        "tags": ["soak", "chat"],
        "endpoint": {"url": upstream_url, "protocol": "openai", "model": "m", "auth": {"kind": "none"}},
        "pricing": {"model": "per_token", "input_per_mtok": "1500", "output_per_mtok": "2500", "currency": "USD"},
        "sla": {"availability": "99.9", "max_latency_ms": 2000, "timeout_ms": 30000},
        "compliance": {"level": "public", "data_residency": ["US"]},
        "context_length": 8192,
    }
    if slug is not None:
        definition["slug"] = slug
    return definition


# --- RSS -----------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process (KiB), psutil when installed, else /proc; None once it is gone."""
    try:
        import psutil  # type: ignore[import-untyped]

        return int(psutil.Process(pid).memory_info().rss // 1024)
    except ImportError:
        pass
    except Exception:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


# --- the clients -----------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One client request: its kind (chat, stream, discovery, publish, version, rotate), the key label, what came
    back (the chat outcome for proxied calls)."""

    kind: str
    label: str
    status: int | None
    request_id: str | None = None
    error: str = ""
    outcome: Outcome | None = None


@dataclass
class SoakConfig:
    seconds: float = 75.0
    clients: int = 16
    stream_share: float = 0.4
    discovery_share: float = 0.15
    rotate_every: float = 10.0
    publish_every: float = 6.0
    seed: int = 20240901
    timeout: float = 60.0


class Clients:
    """The concurrent clients (asyncio in a thread of their own) and the provider and key-admin clients."""

    def __init__(self, config: SoakConfig, servers: list[str], world: dict[str, Any], upstream_url: str) -> None:
        self.config = config
        self.servers = servers
        self.upstream_url = upstream_url
        self.keys = world["keys"]
        self.secrets: dict[str, str] = {label: key["secret"] for label, key in self.keys.items()}
        self.rotating_id = self.keys["rotating"]["key_id"]
        self.issued: list[str] = list(self.secrets.values())  # every secret a client used (log check)
        self.key_ids: dict[str, str] = {label: key["key_id"] for label, key in self.keys.items()}
        self.rotated_ids: list[str] = [self.rotating_id]
        self.models: list[str] = [world["model"]]
        self.published: list[dict[str, Any]] = []  # {"id", "model", "versions"}
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._random = random.Random(config.seed)
        self._counter = itertools.count()

    # lifecycle

    def start(self) -> Clients:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 180) -> list[Call]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            assert not self._thread.is_alive(), "the clients did not stop"
        return self.calls

    def count(self) -> int:
        with self.lock:
            return len(self.calls)

    def _keep(self, item: Call) -> None:
        with self.lock:
            self.calls.append(item)

    def _server(self) -> str:
        return self.servers[next(self._counter) % len(self.servers)]

    async def _run(self) -> None:
        limits = httpx.Limits(max_connections=self.config.clients * 2 + 8)
        async with httpx.AsyncClient(limits=limits, timeout=self.config.timeout) as client:
            await asyncio.gather(
                *(self._client(client, n) for n in range(self.config.clients)),
                self._rotator(client),
                self._publisher(client),
            )

    async def _pause(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < end:
            await asyncio.sleep(min(0.2, end - time.monotonic()))

    # consumers

    async def _client(self, client: httpx.AsyncClient, number: int) -> None:
        rng = random.Random(self.config.seed * 1000 + number)
        labels, weights = list(KEY_WEIGHTS), list(KEY_WEIGHTS.values())
        while not self._stop.is_set():
            if rng.random() < self.config.discovery_share:
                await self._discover(client, rng)
                await asyncio.sleep(0.01)
                continue
            label = rng.choices(labels, weights)[0]
            secret = self.secrets.get(label)
            if secret is None:  # no rotation yet: no old secret
                label, secret = "rotating", self.secrets["rotating"]
            stream = rng.random() < self.config.stream_share
            body = chat_body(rng.choice(self.models), stream=stream, max_tokens=rng.choice([4, 8, 16]))
            outcome = await call(client, self._server(), secret, body, timeout=self.config.timeout)
            self._keep(
                Call(
                    "stream" if stream else "chat",
                    label,
                    outcome.status,
                    outcome.request_id,
                    outcome.error,
                    outcome,
                )
            )
            await asyncio.sleep(0.2 if outcome.status in REFUSED else 0.01)

    async def _discover(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        params = rng.choice(
            [
                {},
                {"search": "chat"},
                {"search": "soak", "limit": "5"},
                {"category": "chat"},
                {"pricing_model": "per_token", "max_price": "2000"},
                {"tags": "soak,chat", "offset": "2", "limit": "3"},
                {"residency": "US", "category": "chat,embeddings"},
            ]
        )
        await self._management(client, "discovery", "open", "GET", "/api/v1/services/", params=params)

    async def _management(
        self, client: httpx.AsyncClient, kind: str, label: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        try:
            response = await client.request(
                method,
                f"{self._server()}{path}",
                headers={"Authorization": f"Bearer {self.secrets[label]}"},
                **kwargs,
            )
        except httpx.HTTPError as exc:
            self._keep(Call(kind, label, None, error=f"{type(exc).__name__}: {exc}"))
            return None
        error = "" if response.status_code < 400 else response.text[:300]
        self._keep(Call(kind, label, response.status_code, response.headers.get("x-request-id"), error))
        return response

    # key rotation: the clients switch to the new secret; the old one stays usable during its grace period

    async def _rotator(self, client: httpx.AsyncClient) -> None:
        await self._pause(self.config.rotate_every / 2)
        while not self._stop.is_set():
            response = await self._management(
                client, "rotate", "admin", "POST", f"/api/v1/keys/{self.rotating_id}/rotate/", json={"grace_hours": 1}
            )
            if response is not None and response.status_code == 201:
                data = response.json()
                previous = self.secrets["rotating"]
                self.issued.append(data["secret"])
                self.rotated_ids.append(data["id"])
                self.rotating_id = data["id"]
                self.secrets["rotating"], self.secrets["rotating-old"] = data["secret"], previous
            await self._pause(self.config.rotate_every)

    # publishing: new services and new versions through REST, as the provider

    async def _publisher(self, client: httpx.AsyncClient) -> None:
        await self._pause(1.0)
        number = 0
        while not self._stop.is_set():
            number += 1
            if not self.published or number % 3 != 0:
                slug = f"soak-{number}"
                definition = service_definition(self.upstream_url, "1.0.0", slug)
                response = await self._management(
                    client, "publish", "publisher", "POST", "/api/v1/services/", json=definition
                )
                if response is not None and response.status_code == 202:
                    data = response.json()
                    entry = {"id": data["service"]["id"], "model": data["service"]["model_id"], "versions": 1}
                    self.published.append(entry)
                    if data["version"]["status"] == "active":
                        self.models.append(entry["model"])
            else:
                entry = self._random.choice(self.published)
                entry["versions"] += 1
                definition = service_definition(self.upstream_url, f"1.{entry['versions'] - 1}.0")
                await self._management(
                    client, "version", "publisher", "POST", f"/api/v1/services/{entry['id']}/versions/", json=definition
                )
            await self._pause(self.config.publish_every)


# --- the books -------------------------------------------------------------------------------------------------


def usage_cost(outcome: Outcome) -> Decimal | None:
    usage = outcome.usage
    if not usage or "cost" not in usage:
        return None
    return Decimal(repr(usage["cost"]))


@dataclass
class Report:
    config: SoakConfig
    seconds: float = 0.0
    by_kind: dict[str, Counter[Any]] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    ledger: dict[str, Any] = field(default_factory=dict)
    refused: dict[str, Any] = field(default_factory=dict)
    rollups: str = ""
    budgets: list[str] = field(default_factory=list)
    quotas: list[str] = field(default_factory=list)
    counters: list[str] = field(default_factory=list)
    logs: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, dict[str, int | None]] = field(default_factory=dict)
    rotations: int = 0
    published: int = 0
    problems: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"soak: {self.seconds:.0f} s of load, {self.config.clients} clients, 2 web processes + worker/beat"]
        lines.append("requests by kind and status:")
        for kind, statuses in sorted(self.by_kind.items()):
            total = sum(statuses.values())
            detail = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items(), key=lambda s: str(s[0])))
            lines.append(f"  {kind:<10} {total:>7}   {detail}")
        lines.append(f"key rotations: {self.rotations}; services published through REST: {self.published}")
        lines.append("ledger vs clients (2xx proxied calls):")
        for name in ("requests", "prompt_tokens", "completion_tokens", "total_tokens", "cost"):
            lines.append(f"  {name:<18} clients {self.client.get(name)!s:>14}   ledger {self.ledger.get(name)!s:>14}")
        lines.append(
            f"  matched by request id: {self.ledger.get('matched')}; missing in ledger: {self.ledger.get('missing')};"
            f" not seen by clients: {self.ledger.get('extra')}; differing: {self.ledger.get('differing')}"
        )
        lines.append(
            f"refused (402/429): {self.refused.get('count')}; recorded {self.refused.get('recorded')}, "
            f"billed {self.refused.get('billed')}"
        )
        lines.append(f"rollups vs raw: {self.rollups}")
        lines.append("limits:")
        lines.extend(f"  {line}" for line in self.budgets + self.quotas + self.counters)
        lines.append(
            f"logs: {self.logs.get('files')} files, {self.logs.get('bytes')} bytes; secrets found: "
            f"{self.logs.get('secrets')}; tracebacks: {self.logs.get('tracebacks')}"
        )
        lines.append("RSS (MiB) idle / warm / end:")
        for name, samples in self.rss.items():
            shown = " / ".join("-" if samples.get(k) is None else f"{samples[k] / 1024:.1f}" for k in RSS_POINTS)
            lines.append(f"  {name:<14} {shown}")
        lines.append("problems: " + ("none" if not self.problems else ""))
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


RSS_POINTS = ("idle", "warm", "end")


def _processes(project: Project, servers: list[WebServer]) -> dict[str, int]:
    found = {}
    for index, server in enumerate(servers, 1):
        assert server.process is not None
        found[f"web-{index}"] = server.process.pid
    for worker in project.workers:
        found["worker"] = worker.pid
        for n, child in enumerate(children_of(worker.pid), 1):
            found[f"worker-child-{n}"] = child
    return found


def _sample(report: Report, point: str, processes: dict[str, int]) -> None:
    for name, pid in processes.items():
        report.rss.setdefault(name, {})[point] = rss_kib(pid)


def _wait_ledger_stable(books: Books, expected: int, seconds: float = 180) -> None:
    """Until the ledger stream is empty and the record count stopped moving (3 s) at or above `expected`."""
    deadline = time.monotonic() + seconds
    last, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = books.sql("SELECT count(*) FROM consumption_usagerecord")[0][0]
        if count != last or books.stream_backlog():
            last, since = count, time.monotonic()
        elif count >= expected and time.monotonic() - since >= 3:
            return
        time.sleep(0.5)
    raise AssertionError(f"the ledger did not settle: {last} records, {books.stream_backlog()} in the stream")


def audit(report: Report, books: Books, clients: Clients, world: dict[str, Any]) -> None:
    """Everything the clients saw against the books; each disagreement becomes a problem of the report."""
    problems = report.problems
    calls = clients.calls
    for item in calls:
        report.by_kind.setdefault(item.kind, Counter())[item.status if item.status is not None else "error"] += 1
    report.rotations = len(clients.rotated_ids) - 1
    report.published = len(clients.published)
    failed: Counter[str] = Counter()
    for item in calls:
        if item.status is None:
            failed[f"{item.kind} ({item.label}): no answer: {item.error[:200]}"] += 1
        elif item.status >= 500 or (item.outcome is None and item.status >= 400):
            failed[f"{item.kind} ({item.label}): {item.status} {item.error[:200]}"] += 1
    problems.extend(f"{n} × {what}" for what, n in failed.most_common(10))
    chats = [c for c in calls if c.outcome is not None]
    unlimited = ("open", "rotating", "rotating-old")
    unexpected = Counter(
        (c.label, c.status)
        for c in chats
        if c.status is not None and 300 <= c.status < 500 and (c.status not in REFUSED or c.label in unlimited)
    )
    if unexpected:
        problems.append(f"proxied calls answered unexpectedly (key, status): {dict(unexpected)}")
    ok = [c.outcome for c in chats if c.outcome is not None and c.outcome.ok]
    incomplete = [o.request_id for o in ok if not o.completed]
    if incomplete:
        problems.append(f"{len(incomplete)} answered calls not read whole: {incomplete[:5]}")
    seen: dict[str, Outcome] = {}
    for outcome in ok:
        if outcome.request_id is None:
            problems.append("a 2xx answer without X-Request-ID")
            continue
        if outcome.request_id in seen:
            problems.append(f"request id {outcome.request_id} answered twice")
        seen[outcome.request_id] = outcome

    # the ledger against the clients, request by request
    records = books.records()
    billed = {rid: r for rid, r in records.items() if 200 <= r.status_code < 300}
    totals = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": Decimal(0)}
    client_totals = dict(totals)
    differing = []
    for rid, outcome in seen.items():
        usage = outcome.usage or {}
        cost = usage_cost(outcome)
        client_totals["requests"] += 1
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            client_totals[name] += int(usage.get(name, 0))
        client_totals["cost"] += cost or 0
        if cost is None:
            problems.append(f"{rid}: no usage cost in the answer: {usage}")
        header = outcome.headers.get("x-marketplace-cost")
        if header is not None and cost is not None and Decimal(header) != cost:
            problems.append(f"{rid}: X-Marketplace-Cost {header} != usage.cost {cost}")
        record = billed.get(rid)
        if record is not None:
            theirs = (record.prompt_tokens, record.completion_tokens, record.cost)
            mine = (usage.get("prompt_tokens"), usage.get("completion_tokens"), cost)
            if theirs != mine:
                differing.append(f"{rid}: ledger {theirs} != client {mine}")
    for record in billed.values():
        totals["requests"] += 1
        totals["prompt_tokens"] += record.prompt_tokens
        totals["completion_tokens"] += record.completion_tokens
        totals["total_tokens"] += record.prompt_tokens + record.completion_tokens
        totals["cost"] += record.cost
    missing, extra = set(seen) - set(billed), set(billed) - set(seen)
    report.client = {k: (v.normalize() if isinstance(v, Decimal) else v) for k, v in client_totals.items()}
    report.ledger = {k: (v.normalize() if isinstance(v, Decimal) else v) for k, v in totals.items()}
    report.ledger.update(
        matched=len(set(seen) & set(billed)), missing=len(missing), extra=len(extra), differing=len(differing)
    )
    if missing:
        problems.append(f"{len(missing)} answered calls without a 2xx ledger record: {sorted(missing)[:5]}")
    if extra:
        problems.append(f"{len(extra)} 2xx ledger records no client saw answered: {sorted(extra)[:5]}")
    problems.extend(differing[:10])
    if report.client != {k: report.ledger[k] for k in report.client}:
        problems.append(f"totals differ: clients {report.client} ledger {report.ledger}")
    other = [r for r in records.values() if not 200 <= r.status_code < 300]
    wrongly_billed = [r.request_id for r in other if r.cost or r.prompt_tokens or r.completion_tokens]
    refused_ids = {c.request_id for c in chats if c.status in REFUSED}
    report.refused = {
        "count": sum(1 for c in chats if c.status in REFUSED),
        "recorded": len(refused_ids & set(records)),
        "billed": len(wrongly_billed),
    }
    if wrongly_billed:
        problems.append(f"{len(wrongly_billed)} records of refused or failed calls billed: {wrongly_billed[:5]}")

    # rollups against raw rows
    try:
        books.assert_rollups_equal_records()
        report.rollups = f"equal ({len(records)} raw records)"
    except AssertionError as exc:
        report.rollups = "DIFFER"
        problems.append(f"rollups: {str(exc)[:1500]}")

    # limits: key budgets, tenant quotas, Redis counters equal to the database
    today = datetime.now(UTC).date()
    spent = defaultdict(Decimal)
    for record in records.values():
        if record.started_at.astimezone(UTC).date() == today:
            spent[record.api_key_id] += record.cost
    budget_id = world["keys"]["budget"]["key_id"]
    line = f"key 'budget': spent {spent[budget_id].normalize()} of {BUDGET_DAY_USD} USD/day"
    report.budgets.append(line)
    if spent[budget_id] > BUDGET_DAY_USD:
        problems.append("budget exceeded: " + line)
    for slug, limits in QUOTAS.items():
        label = "quota-requests" if "api_requests" in limits else "quota-spend"
        tenant_id = world["keys"][label]["tenant_id"]
        usage = books.quota_usage(tenant_id)
        for quota_type, limit in limits.items():
            used = usage.get(quota_type, 0)
            allowed = units(Decimal(limit)) if quota_type == "spend_usd" else int(limit)
            line = f"tenant {slug!r}: {quota_type} used {used} of {allowed}" + (
                " (10⁻¹⁰ USD)" if "spend" in quota_type else ""
            )
            report.quotas.append(line)
            if used > allowed:
                problems.append("quota exceeded: " + line)
    tenants = {key["tenant_id"] for label, key in world["keys"].items() if label in KEY_WEIGHTS}
    for tenant_id in sorted(tenants):
        try:
            books.assert_quota_usage_equals_records(tenant_id)
        except AssertionError as exc:
            problems.append(f"tenant {tenant_id}: {exc}")
    for label in ("budget", "open", "quota-spend"):
        key = world["keys"][label]
        try:
            books.assert_counters_match_database(key["tenant_id"], key["key_id"])
            report.counters.append(f"key {label!r}: Redis counters equal the database")
        except AssertionError as exc:
            problems.append(f"key {label!r}: {exc}")


def scan_logs(report: Report, files: list[Path], secrets: list[str]) -> None:
    """No secret a client used appears in any server log (nor anything shaped like one); tracebacks counted."""
    found, shaped, tracebacks, size = [], set(), 0, 0
    for path in files:
        text = path.read_text(errors="replace") if path.exists() else ""
        size += len(text)
        tracebacks += text.count("Traceback (most recent call last)")
        found.extend(f"{path.name}: {secret[:7]}…" for secret in secrets if secret in text)
        shaped.update(f"{path.name}: {match[:7]}…" for match in SECRET_PATTERN.findall(text))
    report.logs = {"files": len(files), "bytes": size, "secrets": len(found) + len(shaped), "tracebacks": tracebacks}
    if found or shaped:
        problems = sorted(set(found) | shaped)
        report.problems.append(f"API key secrets in the logs: {problems[:10]}")
    if tracebacks:
        report.problems.append(f"{tracebacks} tracebacks in the server logs (see {LOG_DIR})")


def run_soak(config: SoakConfig, progress: Callable[[str], None] = lambda _: None) -> Report:
    """Start the cluster, run the clients for `config.seconds`, drain the ledger, audit; everything torn down."""
    report = Report(config=config)
    upstream = LocalUpstream().start()
    try:
        # INFO: the log capture sees what the servers log in production (request lines included).
        with private_cluster(DATABASE, settings=SETTINGS, LOG_LEVEL="INFO") as (redis, postgres, project):
            progress("cluster up; building the world")
            world = project.call("tests.support.soak:build_world", upstream_url=upstream.url)
            servers = project.start_web(2)
            project.start_worker(beat=True, name=WORKER_NAME)
            time.sleep(2.0)  # the worker forks its beat
            processes = _processes(project, servers)
            _sample(report, "idle", processes)
            log_files = [LOG_DIR / f"{server.port}.log" for server in servers]
            log_files += [LOG_DIR / f"celery-{WORKER_NAME}-{os.getpid()}.log"]
            client = redis.client()
            books = Books(postgres, DATABASE, client)
            clients = Clients(config, [s.url for s in servers], world, upstream.url)
            try:
                progress(f"load: {config.clients} clients for {config.seconds:.0f} s")
                started = time.monotonic()
                clients.start()
                warm = min(15.0, config.seconds / 4)
                next_note = started + 30
                while time.monotonic() - started < config.seconds:
                    time.sleep(0.5)
                    if "warm" not in report.rss.get("web-1", {}) and time.monotonic() - started >= warm:
                        _sample(report, "warm", processes)
                    if time.monotonic() >= next_note:
                        next_note += 30
                        progress(f"  {time.monotonic() - started:.0f} s: {clients.count()} requests")
                clients.stop()
                report.seconds = time.monotonic() - started
                progress(f"load stopped after {report.seconds:.0f} s; draining the ledger")
                answered = sum(1 for c in clients.calls if c.outcome is not None and c.outcome.ok)
                books.wait_drained(180)
                _wait_ledger_stable(books, answered)
                for tenant_id in {key["tenant_id"] for key in world["keys"].values()}:
                    books.wait_settled(tenant_id, 120)
                _sample(report, "end", processes)
                progress("auditing")
                audit(report, books, clients, world)
            finally:
                clients.stop()
                client.close()
    finally:
        upstream.stop()
    scan_logs(report, log_files, clients.issued)
    return report
