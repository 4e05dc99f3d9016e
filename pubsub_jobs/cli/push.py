"""``pubsub-jobs push-server``: the endpoint Pub/Sub pushes jobs to, ``POST /push/QUEUE``.

Imports the modules (a Django project's tasks too, as the worker does), builds the endpoint
(a configuration error stops it here, with the variable to set), checks the queues'
subscriptions, then serves on uvicorn until SIGTERM/SIGINT: the first signal stops taking
requests and lets open ones finish within ``--shutdown-timeout``; a second exits at once.
Requests left unanswered are delivered again by Pub/Sub.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pubsub_jobs._process import exit_now, stop_on_signals
from pubsub_jobs.settings import configure, get_settings
from pubsub_jobs.worker.run import load_jobs

log = logging.getLogger(__name__)


def _cmd_push_server(args: argparse.Namespace) -> int:
    load_jobs(args.modules)
    if args.middleware is not None:  # as PUBSUB_JOBS_MIDDLEWARE would, for enqueues too
        configure(**{**get_settings().model_dump(), "middleware": list(args.middleware)},
                  origin="the command line")
    from pubsub_jobs.push.checks import check_subscriptions
    from pubsub_jobs.push.server import PushServer

    server = PushServer(
        args.queue,
        host=args.host,
        port=args.port,
        concurrency=args.concurrency,
        max_connections=args.max_connections,
        shutdown_timeout=args.shutdown_timeout,
        access_log=args.access_log,
    )
    handler = server.app.start()  # a wrong setting stops it here, before it listens
    check_subscriptions(handler.queues, handler.settings, handler.registry)
    if args.metrics_port is not None:
        _serve_metrics(args.metrics_port, args.metrics_host)
    with stop_on_signals(
        server.request_stop,
        first_message="stopping: open requests may finish (again to exit at once)",
        second_message="second signal: exiting now; Pub/Sub will deliver unanswered "
                       "requests again",
    ):
        server.run()
    stats = handler.stats.snapshot()
    log.info("push server stopped: %s", stats)
    if stats["in_flight"]:
        # Jobs outlived the shutdown timeout: their requests went unanswered and Pub/Sub
        # delivers them again; leave without waiting for their threads.
        exit_now(0)
    return 0


def _serve_metrics(port: int, host: str) -> None:
    """Prometheus' default registry (the ``prometheus`` middleware's metrics) on a port of
    its own, never on the public push port."""
    from pubsub_jobs.errors import ConfigurationError

    try:
        from prometheus_client import start_http_server
    except ImportError:
        raise ConfigurationError(
            "--metrics-port needs the prometheus extra: pip install 'pubsub-jobs[prometheus]'"
        ) from None
    start_http_server(port, addr=host)


def register(sub: Any) -> None:
    """Add ``push-server`` to the subcommands ``sub``."""
    p = sub.add_parser("push-server", allow_abbrev=False,
                       help="serve the endpoint Pub/Sub pushes jobs to (POST /push/QUEUE)")
    p.add_argument("modules", nargs="*", metavar="MODULE", help="modules that define jobs")
    p.add_argument("--queue", action="append", required=True, metavar="Q",
                   help="queue whose pushes to accept, at /push/Q; repeat for several")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (0.0.0.0 in a container)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (Cloud Run: $PORT)")
    p.add_argument("--concurrency", type=int, default=10,
                   help="jobs at once; give the Cloud Run service the same --concurrency")
    p.add_argument("--max-connections", type=int, metavar="N",
                   help="connections and requests held at once, beyond which requests get "
                        "503 and are delivered again (default: 4 x concurrency, at least 64)")
    p.add_argument("--shutdown-timeout", type=float, default=8.0, metavar="SECONDS",
                   help="how long open requests may finish after SIGTERM (Cloud Run gives 10)")
    p.add_argument("--middleware", action="append", metavar="PATH",
                   help="middleware to use, e.g. myapp.middleware:AuditLog or logging, "
                        "prometheus, opentelemetry; repeat for several (replaces "
                        "PUBSUB_JOBS_MIDDLEWARE)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics (/metrics) on this port")
    p.add_argument("--metrics-host", default="127.0.0.1", metavar="HOST",
                   help="address of the metrics port")
    p.set_defaults(func=_cmd_push_server)
