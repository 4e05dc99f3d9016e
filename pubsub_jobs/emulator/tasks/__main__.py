"""``python -m pubsub_jobs.emulator.tasks --host 127.0.0.1 --port 9022``: the Cloud Tasks
emulator as a program of its own (its log on standard error), until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading

from pubsub_jobs._process import stop_on_signals
from pubsub_jobs.emulator.network import check_loopback
from pubsub_jobs.emulator.tasks.store import DEFAULT_TOMBSTONE_SECONDS
from pubsub_jobs.errors import EmulatorError

TOMBSTONE_ENV = "PUBSUB_JOBS_TASKS_TOMBSTONE_SECONDS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pubsub_jobs.emulator.tasks",
        description="A Cloud Tasks emulator bound to one loopback address.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--queue", action="append", default=[],
                        help="a queue (projects/P/locations/L/queues/Q) to create at the start")
    parser.add_argument(
        "--tombstone-seconds", type=float,
        default=float(os.environ.get(TOMBSTONE_ENV) or DEFAULT_TOMBSTONE_SECONDS),
        help=f"how long a task's name stays taken after the task left (default "
             f"${TOMBSTONE_ENV} or {DEFAULT_TOMBSTONE_SECONDS:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        check_loopback(args.host)
    except EmulatorError as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr, flush=True)
        return 2
    from pubsub_jobs.emulator.tasks.server import TasksServer

    try:
        server = TasksServer(args.host, args.port, tombstone_seconds=args.tombstone_seconds,
                             queues=args.queue)
    except OSError as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr, flush=True)
        return 3
    stop = threading.Event()
    with stop_on_signals(stop.set, first_message="stopping the Cloud Tasks emulator"):
        server.start()
        print(f"pubsub-jobs: Cloud Tasks emulator listening on {server.host} (task names stay "
              f"taken {args.tombstone_seconds:g} s after a task left)", file=sys.stderr,
              flush=True)
        while not stop.wait(3600):
            pass
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
