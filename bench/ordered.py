"""Ordered jobs beside unordered ones, in the same run on the emulator:
``python -m bench.ordered [--n 5000] [--keys 100] [--reps 3] [--emulator-host HOST:PORT]``.

Each repetition fills a queue declared ``ordered=True`` with ``n`` no-op jobs spread over
``--keys`` ordering keys (round robin) and an unordered queue with the same ``n`` jobs, then
drains each with the pull worker (``--concurrency`` threads, one stream), timed from the
worker's start until every job has run; the two alternate so that drift of the shared
emulator touches both. A third drain runs ``--one-key-n`` jobs of a single key and records
the most of them seen running at once (it must be 1). It prints each repetition, the medians
and the ratio ordered/unordered (``--json PATH`` writes them too). Nothing is asserted about
speed: this measures.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ORDERED, UNORDERED = "ordered", "unordered"


@dataclass
class Result:
    n: int
    keys: int
    concurrency: int
    one_key_n: int
    ordered: list[float] = field(default_factory=list)
    unordered: list[float] = field(default_factory=list)
    one_key: list[float] = field(default_factory=list)
    #: The most jobs of the single key seen running at once, per repetition.
    one_key_most_at_once: list[int] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ordered) / statistics.median(self.unordered)


class _Concurrency:
    """Counts the jobs running now and the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0
        self.done = 0

    def reset(self) -> None:
        with self.lock:
            self.now = self.most = self.done = 0


TRACKED = _Concurrency()


def _wait(done: Callable[[], int], n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while done() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done()} of {n} jobs ran within {timeout:g} s")
        time.sleep(0.005)


def _drain(queue: str, n: int, concurrency: int, timeout: float, settings: Any) -> float:
    """Jobs per second of one drain of ``n`` jobs by a fresh worker."""
    from pubsub_jobs.worker import QueueSpec, Worker

    worker = Worker([QueueSpec(queue, concurrency)], settings=settings)
    started = time.perf_counter()
    worker.start()
    try:
        _wait(lambda: worker.stats.processed, n, timeout)
        return n / (time.perf_counter() - started)
    finally:
        worker.stop()


def run(host: str, n: int, keys: int, one_key_n: int, reps: int, concurrency: int,
        timeout: float) -> Result:
    from bench import jobs
    from pubsub_jobs import configure, enqueue_many, job, queue
    from pubsub_jobs.adapters import get_adapter
    from pubsub_jobs.admin.topology import bootstrap, delete_topology

    settings = configure(project_id="bench", prefix=f"bench{uuid.uuid4().hex[:6]}-",
                         pubsub_emulator_host=host)
    queue(ORDERED, ordered=True)

    @job(queue=ORDERED, name="bench.ordered.tracked")
    def tracked(i: int) -> None:
        with TRACKED.lock:
            TRACKED.now += 1
            TRACKED.most = max(TRACKED.most, TRACKED.now)
        time.sleep(0.001)  # long enough for a second job of the key to overlap, if it could
        with TRACKED.lock:
            TRACKED.now -= 1
            TRACKED.done += 1

    bootstrap([ORDERED, UNORDERED], settings)
    payload = "x" * 200
    result = Result(n=n, keys=keys, concurrency=concurrency, one_key_n=one_key_n)
    noop = jobs.noop
    try:
        for rep in range(reps):
            noop.using(queue=UNORDERED).enqueue_many([(payload,)] * n)
            result.unordered.append(_drain(UNORDERED, n, concurrency, timeout, settings))
            enqueue_many([noop.using(queue=ORDERED, ordering_key=f"key-{i % keys}")
                          .message(payload) for i in range(n)])
            result.ordered.append(_drain(ORDERED, n, concurrency, timeout, settings))
            TRACKED.reset()
            enqueue_many([tracked.using(ordering_key="the-only-key").message(i)
                          for i in range(one_key_n)])
            result.one_key.append(_drain(ORDERED, one_key_n, concurrency, timeout, settings))
            result.one_key_most_at_once.append(TRACKED.most)
            print(f"rep {rep + 1}: unordered {result.unordered[-1]:6.0f} jobs/s   ordered "
                  f"({keys} keys) {result.ordered[-1]:6.0f} jobs/s   one key "
                  f"{result.one_key[-1]:5.0f} jobs/s, at most {TRACKED.most} at once",
                  flush=True)
    finally:
        delete_topology([ORDERED, UNORDERED], settings)
        get_adapter().close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ordered", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="jobs per drain")
    parser.add_argument("--keys", type=int, default=100, help="ordering keys of the ordered drain")
    parser.add_argument("--one-key-n", type=int, default=1000, help="jobs of the one-key drain")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10, help="worker threads")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="longest wait for one drain")
    parser.add_argument("--emulator-host", metavar="HOST:PORT",
                        help="use this running emulator instead of starting a fresh one")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    emulator = None
    host = args.emulator_host
    if host is None:
        from pubsub_jobs.emulator import free_port, start_pubsub_emulator

        log_dir = Path(tempfile.mkdtemp(prefix="pubsub-jobs-bench-ordered-"))
        emulator = start_pubsub_emulator(free_port(), log_path=log_dir / "emulator.log")
        host = emulator.host
    try:
        result = run(host, args.n, args.keys, args.one_key_n, args.reps, args.concurrency,
                     args.timeout)
    finally:
        if emulator is not None:
            emulator.stop()
    ordered, unordered = statistics.median(result.ordered), statistics.median(result.unordered)
    one_key = statistics.median(result.one_key)
    most = max(result.one_key_most_at_once)
    print(f"median: unordered {unordered:.0f} jobs/s, ordered with {result.keys} keys "
          f"{ordered:.0f} jobs/s, one key {one_key:.0f} jobs/s ({result.n} no-op jobs, "
          f"concurrency {result.concurrency}, emulator at {host})")
    print(f"ratio ordered/unordered: {result.ratio:.2f}   one key: at most {most} job(s) "
          "at once")
    if args.json is not None:
        figures: dict[str, Any] = {
            **asdict(result), "ordered_median": ordered, "unordered_median": unordered,
            "one_key_median": one_key, "ratio": result.ratio, "one_key_most_at_once_max": most}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
