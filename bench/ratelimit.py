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
    parser.add_argument("-n", "--count", type=int, default=5_000, help="operations per measurement")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds (median and best are reported)")
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
        "python PING (redis-py, 1 connection)": client.ping,
        "limiter.hit token_bucket": lambda: limiter.hit(keys[TOKEN_BUCKET], "100000000/s"),
        "limiter.hit sliding_window": lambda: limiter.hit(
            keys[SLIDING_WINDOW], "100000000/s", algorithm=SLIDING_WINDOW
        ),
        "limiter.hit token_bucket (denied)": lambda: limiter.hit(keys[TOKEN_BUCKET] + ":full", "1/day"),
    }
    results: dict[str, list[float]] = {name: [] for name in measurements}
    results["redis-benchmark PING_MBULK -P 1 -c 1"] = []
    try:
        for _ in range(args.rounds):
            ping = _redis_benchmark_ping(args.redis_url, args.count)
            if ping is not None:
                results["redis-benchmark PING_MBULK -P 1 -c 1"].append(ping)
            for name, operation in measurements.items():
                results[name].append(_rate(operation, args.count))
    finally:
        for algorithm, key in keys.items():
            client.delete(*redis_keys(algorithm, key), *redis_keys(algorithm, key + ":full"))

    python_ping_name, tool_ping_name = "python PING (redis-py, 1 connection)", "redis-benchmark PING_MBULK -P 1 -c 1"
    print(f"Redis {args.redis_url}: {args.rounds} interleaved rounds of {args.count} sequential operations each.")
    print("Ratios are against PING of the same round statistic (median of rounds, and best round).\n")
    print(f"{'measurement':<40} {'median/s':>9} {'best/s':>9} {'/py PING':>9} {'/redis-benchmark':>17}")
    for name, values in results.items():
        if not values:
            continue
        median, best = statistics.median(values), max(values)
        py_ping = results[python_ping_name]
        versus_py = f"{median / statistics.median(py_ping):.2f}|{best / max(py_ping):.2f}"
        tool = results[tool_ping_name]
        versus_tool = f"{median / statistics.median(tool):.2f}|{best / max(tool):.2f}" if tool else "n/a"
        print(f"{name:<40} {median:>9,.0f} {best:>9,.0f} {versus_py:>9} {versus_tool:>17}")


if __name__ == "__main__":
    main()
