"""The headline benchmark, side by side in one run: direct to the upstream, the floor of a Django stack (bench/floor.py:
a bare async view forwarding with httpx), our metered proxy, Portkey's open-source gateway (Node.js, no metering)
and LiteLLM's proxy.

    .venv/bin/python bench/proxy.py [--duration 10] [--concurrency 1,8,32] [--peers floor,portkey,litellm] [--rounds 1]

Needs PostgreSQL and Redis (the defaults of this machine), `wrk` (Debian package) and, for Portkey, Node.js and npm.
Peers are installed on first use: LiteLLM into bench/peers/litellm-venv (litellm[proxy]==1.108.7), Portkey's
gateway into bench/peers/portkey (@portkey-ai/gateway@1.15.2). Our key is metered: rpm, tpm, a day and a month
budget, on a professional-tier tenant whose quotas are counted. Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/proxy.py` from a checkout

from tests.support.cluster import uvicorn_command

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
DB_NAME = "bench_proxy"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
LITELLM_VERSION = "1.108.7"
LITELLM_VENV = ROOT / "bench" / "peers" / "litellm-venv"
MASTER_KEY = "sk-bench-master-key"
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = ROOT / "bench" / "peers" / "portkey"
BODY = '{"model": "%s", "messages": [{"role": "user", "content": "Say hello to the benchmark."}], "max_tokens": 16}'

SETUP = textwrap.dedent("""
    import django
    django.setup()
    from apps.tenancy import services as tenancy
    from apps.tenancy.models import Tenant
    from apps.publishing import services as publishing
    from apps.consumption.services import create_api_key
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.create_superuser("bench", "bench@example.com", "bench")
    provider = tenancy.create_tenant(name="Bench provider", slug="bench-provider", owner=admin, trial_days=0,
                                     tier="enterprise")
    tenancy.set_trusted_publisher(tenant=provider, trusted=True, actor=admin)
    consumer = tenancy.create_tenant(name="Bench consumer", slug="bench-consumer", owner=admin, trial_days=0,
                                     tier="professional")
    publishing.publish_service(publisher=provider, actor=admin, slug="chat", version="1.0.0", values={
        "name": "Bench chat", "description": "The benchmark upstream.", "category": "chat",
        "protocol": "openai", "endpoint_url": "UPSTREAM", "upstream_model": "bench", "pricing_model": "per_token",
        "price_input_per_mtok": "0.5", "price_output_per_mtok": "1.5", "data_residency": ["US"],
    })
    # A catalog model offered by two services of the same upstream: the routed target.
    from apps.catalog import services as catalog
    from apps.catalog.services.offers import offer_model
    from apps.publishing.models import ServiceVersion
    publishing.publish_service(publisher=provider, actor=admin, slug="chat-b", version="1.0.0", values={
        "name": "Bench chat B", "description": "The benchmark upstream.", "category": "chat",
        "protocol": "openai", "endpoint_url": "UPSTREAM", "upstream_model": "bench", "pricing_model": "per_token",
        "price_input_per_mtok": "0.6", "price_output_per_mtok": "1.8", "data_residency": ["US"],
    })
    model = catalog.create_model(owner=provider, actor=admin, slug="bench-model",
                                 values={"name": "Bench model", "visibility": "public", "license": "apache-2.0"})
    version = catalog.create_version(model=model, actor=admin, version="1.0.0", values={"status": "ready",
        "artifacts": [{"uri": "s3://bench/model.safetensors", "format": "safetensors", "size_bytes": 1,
                       "sha256": "0" * 64}]})
    catalog.change_model_status(model=model, actor=admin, status="published")
    for service_version in ServiceVersion.objects.filter(service__publisher=provider):
        offer_model(provider=provider, actor=admin, model_version=version, service_version=service_version)
    _, secret = create_api_key(tenant=consumer, actor=admin, name="bench", rpm_limit=10_000_000,
                               tpm_limit=1_000_000_000, budget_day_usd="100000",
                               budget_month_usd="1000000")
    print(secret)
""")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, headers: dict[str, str] | None = None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers=headers, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def psql(sql: str) -> None:
    subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql], check=True, capture_output=True
    )


def env_for_project() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.dev",
        "DEBUG": "false",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "OTEL_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        "DB_CONN_MAX_AGE": "60",
    }


def prepare_project(upstream: str) -> str:
    psql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(["redis-cli", "-u", REDIS_URL, "FLUSHDB"], check=True, capture_output=True)
    env = env_for_project()
    subprocess.run([PY, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    out = subprocess.run(
        [PY, "-c", SETUP.replace("UPSTREAM", upstream)], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip().splitlines()[-1]


def ensure_litellm() -> Path:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        requirement = f"litellm[proxy]=={LITELLM_VERSION}"
        uv = shutil.which("uv") or str(Path(sys.executable).with_name("uv"))
        if Path(uv).exists():  # the project's setup installs uv: seconds instead of minutes
            command = [uv, "pip", "install", "-q", "--python", str(LITELLM_VENV / "bin" / "python"), requirement]
        else:
            command = [str(LITELLM_VENV / "bin" / "pip"), "install", "-q", requirement]
        subprocess.run(command, check=True)
    return binary


def ensure_portkey() -> Path:
    script = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if not script.exists():
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "init", "-y"], cwd=PORTKEY_DIR, check=True, capture_output=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", f"@portkey-ai/gateway@{PORTKEY_VERSION}"],
            cwd=PORTKEY_DIR,
            check=True,
            capture_output=True,
        )
    return script


def wrk(
    url: str, body: str, auth: str, connections: int, duration: int, headers: dict[str, str] | None = None
) -> dict[str, float]:
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    extra = "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in (headers or {}).items())
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {auth}"\n' + extra
        )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s", script.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def percentile(name: str) -> float:
        match = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "p50": percentile("50"),
        "p99": percentile("99"),
        "errors": int(errors.group(1)) if errors else 0,
    }


def start(command: list[str], processes: list[subprocess.Popen[bytes]], **kwargs: Any) -> None:
    processes.append(subprocess.Popen(command, **kwargs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--rounds", type=int, default=1, help="Runs per target and concurrency (medians reported).")
    parser.add_argument("--peers", default="floor,portkey,litellm", help="Comma-separated: floor, portkey, litellm.")
    parser.add_argument("--skip-litellm", action="store_true", help="Shorthand for leaving litellm out of --peers.")
    args = parser.parse_args()
    peers = {p for p in args.peers.split(",") if p} - ({"litellm"} if args.skip_litellm else set())
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    processes: list[subprocess.Popen[bytes]] = []
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    try:
        up_port = free_port()
        start([PY, str(ROOT / "bench" / "upstream.py"), str(up_port)], processes)
        upstream = f"http://127.0.0.1:{up_port}/v1"
        wait_http(f"{upstream}/models")

        secret = prepare_project(upstream)
        ours_port = free_port()
        # As production serves: uvicorn, 2 workers.
        start(
            [*uvicorn_command(ours_port), "--workers", "2", "--log-level", "warning"],
            processes,
            cwd=ROOT,
            env=env_for_project(),
        )
        ours = f"http://127.0.0.1:{ours_port}"
        wait_http(f"{ours}/healthz")

        targets: list[tuple[str, str, str, str, dict[str, str]]] = [
            ("direct", f"{upstream}/chat/completions", BODY % "bench", "none", {})
        ]
        if "floor" in peers:
            floor_port = free_port()
            start(
                [
                    *uvicorn_command(floor_port, app="bench.floor:application"),
                    "--workers",
                    "2",
                    "--log-level",
                    "warning",
                ],
                processes,
                cwd=ROOT,
                env={**os.environ, "FLOOR_UPSTREAM": upstream},
            )
            wait_http(f"http://127.0.0.1:{floor_port}/healthz")
            targets.append(
                ("floor (Django)", f"http://127.0.0.1:{floor_port}/v1/chat/completions", BODY % "bench", "none", {})
            )
        targets.append(("ours (metered)", f"{ours}/v1/chat/completions", BODY % "bench-provider/chat", secret, {}))
        targets.append(
            ("ours (routed)", f"{ours}/v1/chat/completions", BODY % "bench-provider/bench-model", secret, {})
        )
        if "portkey" in peers:
            script = ensure_portkey()
            portkey_port = free_port()
            start(["node", str(script), f"--port={portkey_port}", "--headless"], processes, **quiet)
            wait_http(f"http://127.0.0.1:{portkey_port}/")
            targets.append(
                (
                    f"portkey {PORTKEY_VERSION}",
                    f"http://127.0.0.1:{portkey_port}/v1/chat/completions",
                    BODY % "bench",
                    "sk-upstream",
                    {"x-portkey-provider": "openai", "x-portkey-custom-host": upstream},
                )
            )
        if "litellm" in peers:
            binary = ensure_litellm()
            config = Path(tempfile.mkdtemp()) / "litellm.yaml"
            config.write_text(
                textwrap.dedent(f"""
                model_list:
                  - model_name: bench
                    litellm_params:
                      model: openai/bench
                      api_base: {upstream}
                      api_key: sk-upstream
                general_settings:
                  master_key: {MASTER_KEY}
            """)
            )
            lite_port = free_port()
            lite_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": MASTER_KEY}
            start(
                [str(binary), "--config", str(config), "--port", str(lite_port), "--num_workers", "2"],
                processes,
                env=lite_env,
                **quiet,
            )
            lite = f"http://127.0.0.1:{lite_port}"
            wait_http(f"{lite}/health/liveliness", seconds=180)
            targets.append(
                (f"litellm {LITELLM_VERSION}", f"{lite}/v1/chat/completions", BODY % "bench", MASTER_KEY, {})
            )

        # Warm every target (connections, caches) before measuring.
        for _, url, body, auth, headers in targets:
            wrk(url, body, auth, 4, 2, headers)
        # With --rounds N, the targets take turns N times and each figure is the median of its N runs: the machine's
        # own drift then weighs on every target alike.
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for connections in [int(c) for c in args.concurrency.split(",")]:
            for _ in range(args.rounds):
                for name, url, body, auth, headers in targets:
                    measured = wrk(url, body, auth, connections, args.duration, headers)
                    runs.setdefault((name, connections), []).append(measured)
        results = {
            target: {field: statistics.median(run[field] for run in measured) for field in measured[0]}
            for target, measured in runs.items()
        }
        report(results, [t[0] for t in targets])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def report(results: dict[tuple[str, int], dict[str, float]], names: list[str]) -> None:
    """The table, then the ratios of ours to each peer (throughput, and added p50 over direct), same run."""
    print(f"\n{'target':<20}{'c':>4}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
    for (name, connections), r in results.items():
        print(f"{name:<20}{connections:>4}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>9}")
    if "ours (routed)" in names:
        print("\nrouted (a catalog model of 2 offers) / direct service id, same run: throughput, p50")
        for connections in sorted({c for _, c in results}):
            routed, metered = results[("ours (routed)", connections)], results[("ours (metered)", connections)]
            print(
                f"  c={connections:<3} {routed['rps'] / metered['rps']:.2f}x rps, "
                f"p50 {routed['p50']:.2f} vs {metered['p50']:.2f} ms"
            )
    peers = [name for name in names if name not in ("direct", "ours (metered)", "ours (routed)")]
    if not peers:
        return
    print("\nratios, ours / peer (same run): throughput, and added p50 (over direct)")
    for connections in sorted({c for _, c in results}):
        ours, direct = results[("ours (metered)", connections)], results[("direct", connections)]
        cells = []
        for peer in peers:
            theirs = results[(peer, connections)]
            added = (ours["p50"] - direct["p50"]) / max(theirs["p50"] - direct["p50"], 1e-9)
            cells.append(f"{peer}: {ours['rps'] / theirs['rps']:.2f}x, p50 {added:.2f}x")
        print(f"  c={connections:<3} " + "; ".join(cells))


if __name__ == "__main__":
    main()
