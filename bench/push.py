"""Jobs per second through the push server beside the pull worker, in the same run on the
emulator: ``python -m bench.push [--n 2000] [--reps 3] [--emulator-host HOST:PORT]``.

Each repetition fills two queues with the same ``n`` no-op jobs, then drains one with the
pull worker (``Worker``, ``--concurrency`` threads, one stream) and the other by turning its
subscription into a push subscription (``bootstrap --push-endpoint --update``) to a
``PushServer`` with the same concurrency on 127.0.0.1, and times each from the start of
delivery until every job has run. Pull and push alternate so that drift of the shared
emulator touches both. A third drain has the emulator push the same messages to a bare
endpoint that only answers 204: the most any push server could get from it. It prints each
repetition, the medians and the ratio push/pull (``--json PATH`` writes them too).

The emulator pushes one or two requests at a time, whatever the endpoint could take, so on
it the push figure measures the emulator's pushing more than the server; Google Cloud
pushes with a window that grows while the endpoint answers 2xx.
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


@dataclass
class Result:
    n: int
    concurrency: int
    pull: list[float] = field(default_factory=list)
    push: list[float] = field(default_factory=list)
    #: The emulator pushing the same messages to a bare endpoint that only answers 204.
    push_floor: list[float] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return statistics.median(self.push) / statistics.median(self.pull)


def _wait(done: Callable[[], int], n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while done() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {done()} of {n} jobs ran within {timeout:g} s")
        time.sleep(0.005)


class _BareEndpoint:
    """An endpoint that answers every POST with 204 and counts: the emulator's own pushing
    speed, under any server."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.count = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(204)
                self.end_headers()
                outer.count += 1

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run(host: str, n: int, reps: int, concurrency: int, timeout: float) -> Result:
    from bench import jobs
    from pubsub_jobs import configure
    from pubsub_jobs.adapters import get_adapter
    from pubsub_jobs.admin.topology import bootstrap, delete_topology
    from pubsub_jobs.push.server import PushServer
    from pubsub_jobs.worker import QueueSpec, Worker

    settings = configure(project_id="bench", prefix=f"bench{uuid.uuid4().hex[:6]}-",
                         pubsub_emulator_host=host, push_auth="none")
    pull_queue, push_queue = "pull", "push"
    bootstrap([pull_queue, push_queue], settings)
    payload = "x" * 200
    result = Result(n=n, concurrency=concurrency)
    try:
        for rep in range(reps):
            for queue in (pull_queue, push_queue):
                jobs.noop.using(queue=queue).enqueue_many([(payload,)] * n)
            worker = Worker([QueueSpec(pull_queue, concurrency)], settings=settings)
            started = time.perf_counter()
            worker.start()
            try:
                _wait(lambda w=worker: w.stats.processed, n, timeout)  # type: ignore[misc]
                result.pull.append(n / (time.perf_counter() - started))
            finally:
                worker.stop()
            with PushServer([push_queue], port=0, concurrency=concurrency,
                            settings=settings) as server:
                started = time.perf_counter()
                bootstrap([push_queue], settings, push_endpoint=server.url, update=True)
                try:
                    stats = server.handler.stats
                    _wait(lambda s=stats: s.counts["processed"], n, timeout)  # type: ignore[misc]
                    result.push.append(n / (time.perf_counter() - started))
                finally:
                    bootstrap([push_queue], settings, update=True)  # back to pull
            jobs.noop.using(queue=push_queue).enqueue_many([(payload,)] * n)
            bare = _BareEndpoint()
            try:
                started = time.perf_counter()
                bootstrap([push_queue], settings, push_endpoint=bare.url, update=True)
                try:
                    _wait(lambda b=bare: b.count, n, timeout)  # type: ignore[misc]
                    result.push_floor.append(n / (time.perf_counter() - started))
                finally:
                    bootstrap([push_queue], settings, update=True)
            finally:
                bare.close()
            print(f"rep {rep + 1}: pull {result.pull[-1]:6.0f} jobs/s   push "
                  f"{result.push[-1]:6.0f} jobs/s   (emulator pushing to a bare endpoint "
                  f"{result.push_floor[-1]:6.0f} msgs/s)", flush=True)
    finally:
        delete_topology([pull_queue, push_queue], settings)
        get_adapter().close()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="jobs per queue and repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10,
                        help="worker threads, and push server jobs at once")
    parser.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                        help="longest wait for one drain")
    parser.add_argument("--emulator-host", metavar="HOST:PORT",
                        help="use this running emulator instead of starting a fresh one")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pubsub_jobs.admin.topology").setLevel(logging.ERROR)  # pull <-> push
    emulator = None
    host = args.emulator_host
    if host is None:
        from pubsub_jobs.emulator import free_port, start_pubsub_emulator

        log_dir = Path(tempfile.mkdtemp(prefix="pubsub-jobs-bench-push-"))
        emulator = start_pubsub_emulator(free_port(), log_path=log_dir / "emulator.log")
        host = emulator.host
    try:
        result = run(host, args.n, args.reps, args.concurrency, args.timeout)
    finally:
        if emulator is not None:
            emulator.stop()
    pull, push = statistics.median(result.pull), statistics.median(result.push)
    floor = statistics.median(result.push_floor)
    print(f"median: pull {pull:.0f} jobs/s, push {push:.0f} jobs/s, the emulator's pushing "
          f"to a bare endpoint {floor:.0f} msgs/s ({result.n} no-op jobs, concurrency "
          f"{result.concurrency}, emulator at {host})")
    print(f"ratio push/pull: {result.ratio:.2f}   push/bare endpoint: {push / floor:.2f}")
    if args.json is not None:
        figures: dict[str, Any] = {**asdict(result), "pull_median": pull, "push_median": push,
                                   "push_floor_median": floor, "ratio": result.ratio}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
