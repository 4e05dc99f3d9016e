"""The jobs of ``bench.unique`` and ``bench.rate``: a no-op, and one on the rate-limited queue
``paced`` (declared here with ``rate_limit=50``) that appends the time it ran to the file
``$BENCH_RATE_LOG`` (one per worker process; lines are short, so appends do not interleave)."""

from __future__ import annotations

import os
import time

from pubsub_jobs import job, queue

PACED = "paced"
RATE = 50

queue(PACED, rate_limit=RATE)


@job(queue="bench")
def noop(n: int) -> None:
    pass


@job(queue=PACED)
def paced(n: int) -> None:
    with open(os.environ["BENCH_RATE_LOG"], "a", encoding="ascii") as out:
        out.write(f"{time.time():.6f}\n")
