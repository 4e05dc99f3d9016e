"""``pubsub-jobs worker``, and :func:`run_worker`: the one way to run a worker from code.

The command line, the supervisor's child processes and Django's ``pubsub_worker`` command
all build a :class:`~pubsub_jobs.worker.WorkerOptions` and call :func:`run_worker`, which
imports the jobs, installs the signal handlers and runs a worker (or, with ``processes``,
a supervisor of several).
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from pubsub_jobs.cli._imports import import_modules
from pubsub_jobs.cli._signals import exit_now, stop_on_signals
from pubsub_jobs.settings import configure, get_settings
from pubsub_jobs.worker.options import DEFAULT_PREFETCH, QueueSpec, WorkerOptions

log = logging.getLogger("pubsub_jobs.cli")

#: Exit codes: 0 a clean stop, 1 the worker failed (a stream ended: the message says why,
#: or a stop hung past the shutdown timeout plus STOP_GRACE: every thread's stack is logged).
EXIT_FAILED = 1
#: Seconds a stop may take beyond ``shutdown_timeout`` before the process is ended.
STOP_GRACE = 10.0


def run_worker(options: WorkerOptions) -> int:
    """Run a worker (or a supervisor of ``options.processes``) until SIGTERM/SIGINT, or until
    idle with ``burst``; returns the process exit code. Call it from the main thread."""
    if options.processes is not None:
        return _run_supervisor(options)
    load_jobs(options.modules)
    if options.middleware is not None:  # as PUBSUB_JOBS_MIDDLEWARE would, for enqueues too
        configure(**{**get_settings().model_dump(), "middleware": list(options.middleware)},
                  origin="the command line")
    from pubsub_jobs.worker.runner import Worker  # the Pub/Sub client library: here only
    from pubsub_jobs.worker.supervisor import watch_supervisor

    worker = Worker(options)
    deadline = options.shutdown_timeout + STOP_GRACE

    def stop() -> None:
        # A graceful stop ends within the shutdown timeout; should anything hang past it,
        # faulthandler (C code, which runs even while a job holds the GIL) writes every
        # thread's stack to stderr and exits 1, so an orchestrator never waits on us.
        faulthandler.dump_traceback_later(deadline, exit=True)
        worker.request_stop()

    with stop_on_signals(
        stop,
        second_message="second signal: exiting now; unfinished jobs will be redelivered",
    ):
        watch_supervisor(stop)
        try:
            clean = worker.run()
        finally:
            faulthandler.cancel_dump_traceback_later()
    if worker.error is not None:
        print(f"pubsub-jobs worker: {worker.error}", file=sys.stderr)
        return EXIT_FAILED
    if not clean:
        # Jobs outlived the shutdown timeout: leave without joining their threads; their
        # messages are redelivered.
        exit_now(0)
    return 0


def load_jobs(modules: Sequence[str]) -> None:
    """Import the modules that register jobs; in a Django project (``DJANGO_SETTINGS_MODULE``)
    also set Django up and register its tasks."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from pubsub_jobs.adapters.django.worker import setup_worker

        setup_worker(modules)
    else:
        import_modules(modules)


def _run_supervisor(options: WorkerOptions) -> int:
    from pubsub_jobs.worker.status import StatusServer
    from pubsub_jobs.worker.supervisor import Supervisor

    supervisor = Supervisor(options)
    server = None
    if options.http_port is not None:
        server = StatusServer(supervisor.status, options.http_port, options.http_host).start()
    try:
        with stop_on_signals(supervisor.request_stop, on_second=supervisor.kill,
                             second_message="second signal: killing the worker processes"):
            return supervisor.run()
    finally:
        if server is not None:
            server.stop()


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
