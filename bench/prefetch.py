"""The measure the worker's default prefetch was chosen with (``--phases prefetch``).

For each prefetch value P (``WorkerOptions.prefetch``: messages a stream holds beyond its
threads), on the shared emulator, repetitions interleaved (every P once per round):

- **drain**: a worker at one stream, 10 threads, drains N no-op jobs already queued: jobs/s
  from ``start()`` to the N-th job; the round trip a thread waits between jobs is what a
  prefetch hides.
- **spread**: two idle workers on one queue, then a burst of B jobs of 10 ms: the share the
  busier worker ran (0.5 is an even spread).
- **late joiner**: B jobs of 10 ms already queued, one worker starts, a second one 0.2 s
  later: the share the second one ran. A worker holds at most threads + P messages, so a
  large P lets the first worker hoard what the second could run.
"""

from __future__ import annotations

import functools
import statistics
import time
from typing import Any

from bench._common import interleaved, log, wait_until
from bench.equal import Bench

#: Threads of each worker in this phase (the default concurrency).
THREADS = 10
#: How long the second worker of the late-joiner run starts after the first.
LATE_BY = 0.2


def phase_prefetch(b: Bench) -> dict[str, Any]:
    from bench import jobs
    from pubsub_jobs.worker import QueueSpec, Worker

    n, burst, seconds = b.config.prefetch_n, b.config.spread_n, b.config.spread_seconds
    timeout = max(120.0, n / 50)

    def worker(queue: str, prefetch: int) -> Worker:
        return Worker([QueueSpec(queue, THREADS, 1)], settings=b.settings, prefetch=prefetch)

    def drain(prefetch: int) -> float:
        with b.queue("prefetch-drain", fill=n) as queue:
            w = worker(queue, prefetch)
            started = time.perf_counter()
            w.start()
            try:
                wait_until(lambda: w.stats.processed, n, timeout, f"prefetch {prefetch}")
                return n / (time.perf_counter() - started)
            finally:
                w.stop()

    def spread(prefetch: int, late: bool) -> float:
        with b.queue("prefetch-spread") as queue:
            sleepy = jobs.sleepy.using(queue=queue)
            first, second = worker(queue, prefetch), worker(queue, prefetch)
            try:
                if late:
                    sleepy.enqueue_many([(seconds,)] * burst)
                    first.start()
                    time.sleep(LATE_BY)
                    second.start()
                else:
                    first.start()
                    second.start()
                    time.sleep(b.config.settle)
                    sleepy.enqueue_many([(seconds,)] * burst)
                wait_until(lambda: first.stats.processed + second.stats.processed, burst,
                           timeout, f"burst at prefetch {prefetch}")
            finally:
                first.stop()
                second.stop()
            a, c = first.stats.processed, second.stats.processed
            return c / (a + c) if late else max(a, c) / (a + c)

    def one(prefetch: int) -> dict[str, float]:
        return {"drain": drain(prefetch), "spread": spread(prefetch, late=False),
                "late": spread(prefetch, late=True)}

    out = interleaved({str(p): functools.partial(one, p) for p in b.config.prefetch_values},
                      b.config.reps, warmup=False)
    rows = []
    for p in b.config.prefetch_values:
        runs = out[str(p)]
        row = {"prefetch": p, "runs": runs,
               **{m: round(statistics.median(v), 3) for m, v in runs.items()}}
        rows.append(row)
        log(f"prefetch {p}: drain {row['drain']:,.0f}/s, busier worker's share of a burst "
            f"{row['spread']:.2f}, late joiner's share {row['late']:.2f}")
    return {"n": n, "burst": burst, "job_seconds": seconds, "threads": THREADS,
            "late_by": LATE_BY, "reps": b.config.reps, "rows": rows}
