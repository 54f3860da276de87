"""The headline benchmark: direct upstream vs our metered proxy vs LiteLLM's proxy, side by side in one run.

    .venv/bin/python bench/proxy.py [--duration 10] [--skip-litellm]

Needs PostgreSQL and Redis (the defaults of this machine) and `wrk` (Debian package). LiteLLM is installed into
bench/peers/litellm-venv on first use (litellm[proxy]==1.108.7). Nothing here is part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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
    _, secret = create_api_key(tenant=consumer, actor=admin, name="bench", rpm_limit=10_000_000,
                               tpm_limit=1_000_000_000, budget_month_usd="1000000")
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


def wrk(url: str, body: str, auth: str, connections: int, duration: int) -> dict[str, float]:
    escaped = body.replace("\\", "\\\\").replace('"', '\\"')
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            f'wrk.method = "POST"\nwrk.body = "{escaped}"\n'
            f'wrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.headers["Authorization"] = "Bearer {auth}"\n'
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--concurrency", default="1,8,32")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is missing: apt-get install wrk")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        up_port = free_port()
        processes.append(subprocess.Popen([PY, str(ROOT / "bench" / "upstream.py"), str(up_port)]))
        upstream = f"http://127.0.0.1:{up_port}/v1"
        wait_http(f"{upstream}/models")

        secret = prepare_project(upstream)
        ours_port = free_port()
        processes.append(
            subprocess.Popen(
                [*uvicorn_command(ours_port), "--workers", "2", "--log-level", "warning"],  # as production serves
                cwd=ROOT,
                env=env_for_project(),
            )
        )
        ours = f"http://127.0.0.1:{ours_port}"
        wait_http(f"{ours}/healthz")

        targets = [("direct", f"{upstream}/chat/completions", BODY % "bench", "none")]
        targets.append(("ours (metered)", f"{ours}/v1/chat/completions", BODY % "bench-provider/chat", secret))
        if not args.skip_litellm:
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
            processes.append(
                subprocess.Popen(
                    [str(binary), "--config", str(config), "--port", str(lite_port), "--num_workers", "2"],
                    env=lite_env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            lite = f"http://127.0.0.1:{lite_port}"
            wait_http(f"{lite}/health/liveliness", seconds=180)
            targets.append(("litellm 1.108.7", f"{lite}/v1/chat/completions", BODY % "bench", MASTER_KEY))

        # Warm every target (connections, caches, JIT-less Python paths) before measuring.
        for _, url, body, auth in targets:
            wrk(url, body, auth, 4, 2)
        results: dict[tuple[str, int], dict[str, float]] = {}
        for connections in [int(c) for c in args.concurrency.split(",")]:
            for name, url, body, auth in targets:
                results[(name, connections)] = wrk(url, body, auth, connections, args.duration)

        names = [t[0] for t in targets]
        print(f"\n{'target':<18}{'c':>4}{'rps':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
        for (name, connections), r in results.items():
            print(f"{name:<18}{connections:>4}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['errors']:>9}")
        if "litellm 1.108.7" in names:
            print("\nratios (same run):")
            for connections in sorted({c for _, c in results}):
                ours_r, lite_r = results[("ours (metered)", connections)], results[("litellm 1.108.7", connections)]
                direct = results[("direct", connections)]
                added_ours = ours_r["p50"] - direct["p50"]
                added_lite = lite_r["p50"] - direct["p50"]
                print(
                    f"  c={connections:<3} throughput ours/litellm = {ours_r['rps'] / lite_r['rps']:.2f}x, "
                    f"ours/direct = {ours_r['rps'] / direct['rps']:.3f}, added p50 ours/litellm = "
                    f"{added_ours / added_lite:.2f}"
                )
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
