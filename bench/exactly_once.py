"""What an exactly-once queue costs the worker (``--phases exactly_once``).

One worker of 10 threads at one stream drains N no-op jobs already queued, from a plain queue
and from a queue declared ``exactly_once=True`` (its subscription made with exactly-once
delivery, its acks sent with ``ack_with_response`` and answered), repetitions interleaved on
the shared emulator: jobs/s from ``start()`` to the N-th job, and the ratio. On the emulator
only: Google Cloud's exactly-once subscriptions have latency and limits of their own
(docs/exactly-once.md).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench._common import interleaved, log, wait_until
from bench.equal import Bench

#: Threads of the worker (the default concurrency), at one stream.
THREADS = 10


def phase_exactly_once(b: Bench) -> dict[str, Any]:
    from pubsub_jobs.worker import QueueSpec, Worker

    n = b.config.exactly_once_n
    timeout = max(120.0, n / 50)

    def drain(exactly_once: bool) -> dict[str, float]:
        with b.queue("eo-drain" if exactly_once else "plain-drain", fill=n,
                     exactly_once=exactly_once) as queue:
            worker = Worker([QueueSpec(queue, THREADS, 1)], settings=b.settings)
            started = time.perf_counter()
            worker.start()
            try:
                wait_until(lambda: worker.stats.processed, n, timeout,
                           f"drain, exactly_once={exactly_once}")
                rate = n / (time.perf_counter() - started)
            finally:
                worker.stop()
            counts = worker.stats.snapshot()
            return {"drain": rate, "acks_confirmed": counts["acks_confirmed"],
                    "acks_refused": counts["acks_refused"]}

    out = interleaved({"plain": lambda: drain(False), "exactly_once": lambda: drain(True)},
                      b.config.reps, warmup=False)
    sides = {side: {"runs": runs, **{m: round(statistics.median(v), 1) for m, v in runs.items()}}
             for side, runs in out.items()}
    ratio = round(sides["exactly_once"]["drain"] / sides["plain"]["drain"], 3)
    log(f"exactly-once: plain {sides['plain']['drain']:,.0f} jobs/s, exactly-once "
        f"{sides['exactly_once']['drain']:,.0f} jobs/s, ratio {ratio:.2f}")
    return {"n": n, "threads": THREADS, "reps": b.config.reps, **sides, "ratio": ratio}
