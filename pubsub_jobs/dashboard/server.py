"""The dashboard on uvicorn (the ``dashboard`` extra): in the foreground for ``pubsub-jobs
dashboard``, or in a thread for tests and scripts.

uvicorn is the ASGI server the push endpoint runs on too (:mod:`pubsub_jobs._http.serving`
serves both). The server installs no signal handler (the command line has its own) and
starts and stops the heartbeat listener through the application's lifespan, so the
dashboard's subscription is deleted on every clean exit.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Any

from pubsub_jobs.dashboard.app import create_app
from pubsub_jobs.dashboard.config import DashboardConfig
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.settings import Settings

try:
    import uvicorn
except ImportError as exc:  # pragma: no cover - the extra names it
    raise ConfigurationError(
        "the dashboard needs the dashboard extra: pip install 'pubsub-jobs[dashboard]'"
    ) from exc

from pubsub_jobs._http.serving import (  # noqa: E402 - after the extra's message
    QuietServer,
    base_url,
    bind_socket,
    serve_in_thread,
)

__all__ = ["DashboardServer"]

log = logging.getLogger(__name__)


class DashboardServer:
    """Serves :func:`~pubsub_jobs.dashboard.app.create_app` on ``config.host:config.port``
    (port 0: a free one, see :attr:`port`). ``app_options`` go to ``create_app``."""

    def __init__(self, config: DashboardConfig, settings: Settings | None = None,
                 **app_options: Any) -> None:
        self.config = config.check()
        self.app = create_app(config, settings, **app_options)
        self.host = config.host
        self.port = config.port
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return base_url(self.host, self.port)

    def run(self) -> None:
        """Serve in this thread until :meth:`request_stop`."""
        sock = self._bind()
        server = self._server = QuietServer(self._config())
        log.info("dashboard on %s (queues %s; access: %s)", self.url,
                 ", ".join(self.config.queues), self.config.access)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()

    def start(self, timeout: float = 30.0) -> DashboardServer:
        """Serve in a thread of its own; returns once it accepts connections."""
        sock = self._bind()
        server = self._server = QuietServer(self._config())
        try:
            self._thread = serve_in_thread(server, sock, "pubsub-jobs-dashboard", timeout)
        except ConfigurationError as exc:
            self.stop()
            raise ConfigurationError(f"the dashboard did not start on {self.url}{exc}") from None
        return self

    def request_stop(self) -> None:
        """Ask the server to stop (safe from signal handlers and other threads)."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float = 15.0) -> None:
        """Stop a server started with :meth:`start` and wait for it (idempotent)."""
        self.request_stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> DashboardServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _bind(self) -> socket.socket:
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        return sock

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app, host=self.host, port=self.port, lifespan="on", log_config=None,
            access_log=False, server_header=False, timeout_graceful_shutdown=5,
        )
