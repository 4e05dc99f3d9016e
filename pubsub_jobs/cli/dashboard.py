"""``pubsub-jobs dashboard``: the web page for the person on call (see
:mod:`pubsub_jobs.dashboard`).

Imports the modules (a Django project's settings too, as the worker does), refuses options
that cannot be served safely (another address than loopback without a token or IAP), then
serves until SIGTERM/SIGINT; on the way out the dashboard's heartbeat subscription is
deleted.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from pubsub_jobs._process import stop_on_signals
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.worker.run import load_jobs

log = logging.getLogger(__name__)


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from pubsub_jobs.dashboard.config import IAP_AUDIENCE_ENV, TOKEN_ENV, DashboardConfig

    config = DashboardConfig(
        queues=tuple(dict.fromkeys(args.queue)),
        host=args.host,
        port=args.port,
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        iap_audience=args.iap_audience or os.environ.get(IAP_AUDIENCE_ENV) or None,
        allowed_hosts=tuple(args.allowed_host or ()),
        refresh_seconds=args.refresh,
    ).check()  # refuses before anything is imported or created
    load_jobs(args.modules)
    try:
        from pubsub_jobs.dashboard.server import DashboardServer
    except ImportError as exc:
        raise ConfigurationError(f"the dashboard needs the dashboard extra ({exc.name} is "
                                 "missing): pip install 'pubsub-jobs[dashboard]'") from None

    server = DashboardServer(config)
    with stop_on_signals(server.request_stop, first_message="stopping the dashboard "
                                                            "(again to exit at once)"):
        server.run()
    log.info("dashboard stopped")
    return 0


def register(sub: Any) -> None:
    """Add ``dashboard`` to the subcommands ``sub``."""
    p = sub.add_parser("dashboard", allow_abbrev=False,
                       help="serve the web page of queues, live workers and dead sets")
    p.add_argument("modules", nargs="*", metavar="MODULE",
                   help="modules that define jobs (or settings), as for the worker")
    p.add_argument("--queue", action="append", required=True, metavar="Q",
                   help="queue to show; repeat for several")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; any but loopback needs --token or "
                        "--iap-audience (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    p.add_argument("--token", metavar="TOKEN",
                   help="require this token (a browser signs in with it once; scripts send "
                        "'Authorization: Bearer TOKEN'); better in PUBSUB_JOBS_DASHBOARD_TOKEN, "
                        "since other users of the machine can read a command line")
    p.add_argument("--iap-audience", metavar="AUDIENCE",
                   help="behind Identity-Aware Proxy: accept only requests with IAP's signed "
                        "header for this audience (/projects/NUMBER/global/backendServices/ID"
                        "); default: PUBSUB_JOBS_DASHBOARD_IAP_AUDIENCE")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a host name the dashboard answers to (the Host header); repeat for "
                        "several (default: loopback names on loopback, any elsewhere)")
    p.add_argument("--refresh", type=float, default=5.0, metavar="SECONDS",
                   help="how often pages update themselves (default 5)")
    p.set_defaults(func=_cmd_dashboard)
