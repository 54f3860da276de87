"""One limit, many OS processes: exactly the limit is admitted, and every denial says how long to wait."""

from __future__ import annotations

import math
import multiprocessing
import queue
import time
from typing import Any

import pytest

from llm_infra_django.ratelimit.algorithms import SLIDING_WINDOW, TOKEN_BUCKET
from llm_infra_django.ratelimit.limiter import make_key
from tests.llm_infra_django.ratelimit import workers

PROCESSES = 4
THREADS = 50
LIMIT = 37
PERIOD = 3600  # long enough that nothing refills during the burst


def _collect(results: Any, processes: list[Any], deadline: float) -> list[tuple[bool, str | None, float | None]]:
    """Every process's outcomes; fails fast when a process dies or the deadline passes."""
    outcomes: list[tuple[bool, str | None, float | None]] = []
    received = 0
    while received < len(processes):
        try:
            outcomes += results.get(timeout=0.5)
            received += 1
        except queue.Empty:
            crashed = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            if crashed or time.monotonic() > deadline:
                pytest.fail(f"workers did not report (exit codes {[p.exitcode for p in processes]})")
    return outcomes


@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.parametrize("algorithm", [TOKEN_BUCKET, SLIDING_WINDOW])
def test_four_processes_of_fifty_threads_admit_exactly_the_limit(
    redis_url: str, redis_scope: str, algorithm: str
) -> None:
    # given
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(PROCESSES), context.Queue()
    key = make_key(redis_scope, "burst")
    processes = [
        context.Process(
            target=workers.hit_concurrently,
            args=(redis_url, key, f"{LIMIT}/hour", algorithm, THREADS, start, results),
        )
        for _ in range(PROCESSES)
    ]

    # when
    try:
        for process in processes:
            process.start()
        outcomes = _collect(results, processes, deadline=time.monotonic() + 60)
    finally:
        for process in processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()

    # then
    assert len(outcomes) == PROCESSES * THREADS
    assert sum(allowed for allowed, _, _ in outcomes) == LIMIT
    longest_wait = math.ceil(PERIOD / LIMIT) if algorithm == TOKEN_BUCKET else PERIOD
    for allowed, retry_after_header, retry_after in outcomes:
        if allowed:
            assert retry_after_header is None
            continue
        assert retry_after is not None and 0 < retry_after <= longest_wait
        assert 1 <= int(retry_after_header) <= longest_wait
