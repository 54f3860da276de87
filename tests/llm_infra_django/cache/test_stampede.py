"""get_or_set under concurrent misses: threads and processes compute once; dead holders and slow holders."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parents[3]


class Computation:
    """A slow, counted computation."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> dict[str, object]:
        with self._lock:
            self.calls += 1
            call = self.calls
        time.sleep(self.seconds)
        return {"call": call, "items": [1, 2, 3]}


def _run_threads(count: int, target) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        barrier.wait(timeout=10)
        results[index] = target()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def _start_workers(redis_url: str, prefix: str, key: str, mode: str, count: int, lock_timeout: float):
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.llm_infra_django.cache.stampede_worker",
                redis_url,
                prefix,
                key,
                mode,
                str(lock_timeout),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(count)
    ]


def _release_when_ready(redis_client, prefix: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while int(redis_client.get(f"{prefix}:ready") or 0) < count:
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.01)
    redis_client.set(f"{prefix}:go", 1, ex=60)


def test_twenty_threads_missing_together_compute_once(make_cache):
    # given
    compute = Computation()
    caches = [make_cache() for _ in range(20)]
    counter = iter(range(20))

    # when
    results = _run_threads(20, lambda: caches[next(counter)].get_or_set("report", compute, 60))

    # then
    assert compute.calls == 1
    assert results == [{"call": 1, "items": [1, 2, 3]}] * 20


def test_processes_missing_together_compute_once(redis_url, redis_client, unique_prefix, make_cache):
    # given
    workers = _start_workers(redis_url, unique_prefix, "report", "compute", count=3, lock_timeout=10)
    _release_when_ready(redis_client, unique_prefix, 3)

    # when
    outputs = [worker.communicate(timeout=60) for worker in workers]

    # then
    assert [worker.returncode for worker in workers] == [0, 0, 0], [err.decode() for _, err in outputs]
    values = [orjson.loads(out) for out, _ in outputs]
    assert int(redis_client.get(f"{unique_prefix}:computations")) == 1
    assert values[0] == values[1] == values[2]
    assert make_cache().get("report") == values[0]


def test_a_dead_lock_holder_is_replaced_by_one_waiter_when_its_lock_expires(
    redis_url, redis_client, unique_prefix, make_cache
):
    # given a process that took the lock and died while computing
    (dying,) = _start_workers(redis_url, unique_prefix, "report", "die", count=1, lock_timeout=1.0)
    _release_when_ready(redis_client, unique_prefix, 1)
    assert dying.wait(timeout=60) == 3
    cache = make_cache(STAMPEDE_LOCK_TIMEOUT=1.0, STAMPEDE_POLL_INTERVAL=0.02)
    assert redis_client.exists(cache.client.lock_key("report")), "the dead holder's lock should remain"
    compute = Computation(seconds=0.1)
    started = time.monotonic()

    # when
    results = _run_threads(5, lambda: cache.get_or_set("report", compute, 60))

    # then
    assert compute.calls == 1
    assert results == [{"call": 1, "items": [1, 2, 3]}] * 5
    assert time.monotonic() - started < 5


def test_a_waiter_computes_itself_after_the_wait_timeout(make_cache, redis_client):
    # given a lock held by a (slow) holder for longer than we are prepared to wait
    cache = make_cache(STAMPEDE_WAIT_TIMEOUT=0.3, STAMPEDE_POLL_INTERVAL=0.02)
    redis_client.set(cache.client.lock_key("slow"), "someone-else", px=30_000)
    started = time.monotonic()

    # when
    value = cache.get_or_set("slow", lambda: "mine", 60)

    # then
    assert value == "mine"
    assert 0.3 <= time.monotonic() - started < 3
    assert redis_client.get(cache.client.lock_key("slow")) == b"someone-else"


def test_a_failing_computation_releases_the_lock(cache, redis_client):
    # given
    def broken():
        raise RuntimeError("upstream down")

    # when
    with pytest.raises(RuntimeError):
        cache.get_or_set("k", broken, 60)

    # then
    assert not redis_client.exists(cache.client.lock_key("k"))
    assert cache.get_or_set("k", lambda: "recovered", 60) == "recovered"


def test_none_is_cached_like_any_value(cache):
    # given
    compute = Computation(seconds=0)

    # when
    first = cache.get_or_set("nothing", lambda: compute() and None, 60)
    second = cache.get_or_set("nothing", lambda: compute() and None, 60)

    # then
    assert first is None and second is None
    assert compute.calls == 1


async def test_async_get_or_set_uses_the_same_guard(cache):
    # given
    compute = Computation(seconds=0.05)

    # when
    first = await cache.aget_or_set("async", compute, 60)
    second = await cache.aget_or_set("async", compute, 60)

    # then
    assert first == second == {"call": 1, "items": [1, 2, 3]}
    assert compute.calls == 1
