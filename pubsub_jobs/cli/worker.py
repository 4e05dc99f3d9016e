"""``pubsub-jobs worker``: its arguments become a :class:`~pubsub_jobs.worker.WorkerOptions`,
which :func:`run_worker` runs with the command line's signal handler.

Running a worker (the jobs imported, one process or a supervisor of several, the
supervisor's child processes) is :mod:`pubsub_jobs.worker.run`'s; the command line only
parses and installs the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

from pubsub_jobs._process import stop_on_signals
from pubsub_jobs.worker import run
from pubsub_jobs.worker.options import DEFAULT_PREFETCH, QueueSpec, WorkerOptions


def run_worker(options: WorkerOptions) -> int:
    """Run a worker as the command line does (:func:`pubsub_jobs.worker.run.run_worker`,
    with the command line's signal handler: the first SIGTERM/SIGINT stops gracefully, the
    second at once); returns the process exit code. Call it from the main thread."""
    return run.run_worker(options, on_signals=stop_on_signals)


def options_from_args(args: argparse.Namespace) -> WorkerOptions:
    queues = [QueueSpec.parse(q, concurrency=args.concurrency, streams=args.streams)
              for q in args.queue]
    return WorkerOptions(
        queues=queues,
        modules=list(dict.fromkeys([*(getattr(args, "app", None) or ()), *args.modules])),
        middleware=args.middleware,
        prefetch=args.prefetch,
        shutdown_timeout=args.shutdown_timeout,
        burst=args.burst,
        burst_idle=args.burst_idle,
        max_lease_duration=args.max_lease_duration,
        lease_seconds=args.lease_seconds,
        stuck_after=args.stuck_after,
        http_port=args.http_port,
        http_host=args.http_host,
        processes=args.processes,
        log_level=args.log_level,
        log_format=args.log_format,
    )


def _cmd_worker(args: argparse.Namespace) -> int:
    return run_worker(options_from_args(args))


def register(sub: Any) -> None:
    """Add ``worker`` to the subcommands ``sub``."""
    p = sub.add_parser("worker", help="run jobs of some queues", allow_abbrev=False)
    p.add_argument("modules", nargs="*", metavar="MODULE", help="modules that define jobs")
    p.add_argument("--queue", action="append", required=True, metavar="Q[=N[xS]]",
                   help="queue to work on; =N sets its concurrency, xS its streams")
    p.add_argument("--concurrency", type=int, default=10, help="jobs at once per queue")
    p.add_argument("--streams", type=int, default=1, help="streaming pulls per queue")
    p.add_argument("--prefetch", type=int, default=DEFAULT_PREFETCH, metavar="N",
                   help="messages each stream holds beyond its threads, so threads never "
                        f"wait a round trip between jobs (default {DEFAULT_PREFETCH})")
    p.add_argument("--burst", action="store_true", help="exit once the queues are idle")
    p.add_argument("--burst-idle", type=float, default=2.0, metavar="SECONDS")
    p.add_argument("--shutdown-timeout", type=float, default=25.0, metavar="SECONDS",
                   help="how long running jobs may finish after SIGTERM")
    p.add_argument("--processes", type=int, metavar="N",
                   help="run N worker processes under a supervisor that restarts them")
    p.add_argument("--http-port", type=int, metavar="PORT",
                   help="serve /healthz, /status and /metrics on this port")
    p.add_argument("--http-host", default="127.0.0.1", metavar="HOST",
                   help="address of the HTTP port (0.0.0.0 in a container)")
    p.add_argument("--stuck-after", type=float, default=900.0, metavar="SECONDS",
                   help="report stuck when a job runs, or nothing settles, this long")
    p.add_argument("--lease-seconds", type=int, default=60, metavar="SECONDS",
                   help="each lease renewal of a message (10-600): a running job may hold "
                        "the GIL for 3/4 of it; a killed worker's messages return within it")
    p.add_argument("--max-lease-duration", type=float, default=3600.0, metavar="SECONDS",
                   help="how long a running job keeps its message; longer jobs are "
                        "redelivered meanwhile")
    p.add_argument("--middleware", action="append", metavar="PATH",
                   help="middleware to use, e.g. myapp.middleware:AuditLog or logging, "
                        "prometheus, opentelemetry; repeat for several (replaces "
                        "PUBSUB_JOBS_MIDDLEWARE)")
    p.set_defaults(func=_cmd_worker)
