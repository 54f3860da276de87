"""Decisions per second of the Lua limiter from one process, next to single-connection PING on the same Redis."""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

import django
import structlog
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as `python bench/ratelimit.py` from a checkout

PYTHON_PING = "python PING (redis-py)"
TOOL_PING = "redis-benchmark PING_MBULK -P 1 -c 1"
HIGH = "100000000/s"  # a rate every hit fits in: the admitted path, which reads, writes and sets the TTL


def _rate(operation: Callable[[], object], count: int) -> float:
    """Operations per second of `count` sequential calls (one round trip each, no pipelining)."""
    started = time.perf_counter()
    for _ in range(count):
        operation()
    return count / (time.perf_counter() - started)


def _redis_benchmark_ping(url: str, count: int) -> float | None:
    """`redis-benchmark -q -t ping -n N -P 1 -c 1`: PING_MBULK per second (None when the tool is missing)."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return None
    parsed = urlparse(url)
    command = [binary, "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379)]
    if parsed.password:
        command += ["-a", parsed.password]
    command += ["-q", "-t", "ping", "-n", str(count), "-P", "1", "-c", "1"]
    output = subprocess.run(command, capture_output=True, text=True, timeout=300, check=True).stdout
    match = re.search(r"PING_MBULK: ([\d.]+) requests per second", output.replace("\r", "\n"))
    return float(match.group(1)) if match else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("-n", "--count", type=int, default=2_000, help="operations per measurement")
    parser.add_argument("--rounds", type=int, default=25, help="interleaved rounds of every measurement")
    args = parser.parse_args()

    settings.configure(LLM_INFRA={"REDIS_URL": args.redis_url, "TRACING": {"ENABLED": False}}, INSTALLED_APPS=[])
    django.setup()
    # Denials log one line each; that is the logging pipeline's cost, not the limiter's, so it is filtered out here.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW, TOKEN_BUCKET
    from llm_infra_django.ratelimit.backends import redis_keys
    from llm_infra_django.ratelimit.limiter import limiter, make_key
    from llm_infra_django.redis import get_redis

    client = get_redis()
    assert client is not None
    client.ping()
    run = uuid.uuid4().hex[:8]
    keys = {
        TOKEN_BUCKET: make_key("bench", f"{run}:tb"),
        SLIDING_WINDOW: make_key("bench", f"{run}:sw"),
    }
    measurements: dict[str, Callable[[], object]] = {
        PYTHON_PING: client.ping,
        "limiter.hit token_bucket": lambda: limiter.hit(keys[TOKEN_BUCKET], HIGH),
        "limiter.hit sliding_window": lambda: limiter.hit(keys[SLIDING_WINDOW], HIGH, algorithm=SLIDING_WINDOW),
        "limiter.hit token_bucket (denied)": lambda: limiter.hit(keys[TOKEN_BUCKET] + ":full", "1/day"),
    }
    results: dict[str, list[float]] = {name: [] for name in measurements}
    results[TOOL_PING] = []
    try:
        for _ in range(args.rounds):
            ping = _redis_benchmark_ping(args.redis_url, args.count)
            if ping is not None:
                results[TOOL_PING].append(ping)
            for name, operation in measurements.items():
                results[name].append(_rate(operation, args.count))
    finally:
        for algorithm, key in keys.items():
            client.delete(*redis_keys(algorithm, key), *redis_keys(algorithm, key + ":full"))

    # On a shared machine other processes steal whole rounds: the median says what a busy host gets, the 90th
    # percentile round approximates the quiet-host rate. Ratios compare the same statistic of both measurements.
    python_ping, tool_ping = results[PYTHON_PING], results[TOOL_PING]
    print(f"Redis {args.redis_url}: {args.rounds} interleaved rounds of {args.count} sequential operations each")
    print("(one connection, no pipelining, one round trip per operation); ops/s per round: median | 90th pct.\n")
    print(f"{'measurement':<38} {'median':>8} {'p90':>8}   {'÷ python PING':>13}   {'÷ redis-benchmark':>17}")
    for name, values in results.items():
        if not values:
            continue
        versus_tool = _ratios(values, tool_ping) if tool_ping else "n/a"
        print(
            f"{name:<38} {_p(values, 50):>8,.0f} {_p(values, 90):>8,.0f}   {_ratios(values, python_ping):>13}"
            f"   {versus_tool:>17}"
        )


def _p(values: list[float], percentile: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[percentile - 1]


def _ratios(values: list[float], reference: list[float]) -> str:
    return f"{_p(values, 50) / _p(reference, 50):.2f} | {_p(values, 90) / _p(reference, 90):.2f}"


if __name__ == "__main__":
    main()
