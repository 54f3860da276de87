"""Soak with exact accounting: a private cluster (Redis, PostgreSQL, 2 uvicorn processes, a Celery worker with beat,
a local OpenAI-compatible upstream) under a mix of discovery, publishing, key rotation and proxied calls (streamed
and not, some refused by budgets and quotas) from many concurrent clients; then the ledger against what the clients
saw, rollups against raw rows, limits, secrets in the logs, and RSS per process.

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 24]

Needs redis-server and the PostgreSQL binaries; exits 1 when the audit finds a problem. The CI variant is
tests/soak/test_soak.py; both run `tests.support.soak`.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.cluster import LOG_DIR
from tests.support.soak import SoakConfig, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=24)
    parser.add_argument("--seed", type=int, default=SoakConfig.seed)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = SoakConfig(seconds=args.minutes * 60, clients=args.clients, seed=args.seed)
    started = time.monotonic()
    report = run_soak(config, progress=lambda line: print(f"[{time.monotonic() - started:6.0f} s] {line}", flush=True))
    text = report.render()
    print(text)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    (LOG_DIR / "soak-report.txt").write_text(text + "\n")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
