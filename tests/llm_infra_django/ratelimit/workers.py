"""Code run in spawned processes by the multi-process test: a burst of concurrent hits from many threads."""

from __future__ import annotations

import threading
from typing import Any


def hit_concurrently(
    redis_url: str, key: str, rate: str, algorithm: str, threads: int, start: Any, results: Any
) -> None:
    """Configure Django on `redis_url`, wait for every process, then hit `key` once from each of `threads` threads;
    put [(allowed, Retry-After header, retry_after)] on `results`."""
    import django
    from django.conf import settings

    settings.configure(LLM_INFRA={"REDIS_URL": redis_url, "TRACING": {"ENABLED": False}}, INSTALLED_APPS=[])
    django.setup()
    from llm_infra_django.ratelimit.limiter import limiter

    outcomes: list[tuple[bool, str | None, float | None]] = []
    lock = threading.Lock()
    together = threading.Barrier(threads)

    def attempt() -> None:
        together.wait(timeout=30)
        decision = limiter.hit(key, rate, algorithm=algorithm, fail_open=False)
        with lock:
            outcomes.append((decision.allowed, decision.headers().get("Retry-After"), decision.retry_after))

    workers = [threading.Thread(target=attempt) for _ in range(threads)]
    start.wait(timeout=60)
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    results.put(outcomes)
