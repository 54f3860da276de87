"""A separate OS process calling `get_or_set` on one key, for the cross-process stampede tests.

Usage: python -m tests.llm_infra_django.cache.stampede_worker URL PREFIX KEY MODE LOCK_TIMEOUT
MODE "compute" counts a computation in Redis and returns after 0.5 s; "die" counts it and exits mid-computation,
leaving its lock behind. The worker waits for the `PREFIX:go` key so that every worker misses at the same time.
"""

from __future__ import annotations

import os
import sys
import time

import orjson


def main() -> None:
    url, prefix, key, mode, lock_timeout = sys.argv[1:6]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.llm_infra_django.settings")
    import django
    import redis

    django.setup()
    from llm_infra_django.cache import RedisCache

    raw = redis.Redis.from_url(url)
    cache = RedisCache(
        url, {"KEY_PREFIX": prefix, "OPTIONS": {"ALIAS": prefix, "STAMPEDE_LOCK_TIMEOUT": float(lock_timeout)}}
    )

    def compute() -> dict[str, int]:
        raw.incr(f"{prefix}:computations")
        if mode == "die":
            os._exit(3)
        time.sleep(0.5)
        return {"pid": os.getpid()}

    raw.incr(f"{prefix}:ready")
    deadline = time.monotonic() + 60
    while not raw.exists(f"{prefix}:go"):
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.005)
    sys.stdout.write(orjson.dumps(cache.get_or_set(key, compute, 60)).decode() + "\n")


if __name__ == "__main__":
    main()
