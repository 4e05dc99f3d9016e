"""The push endpoint on uvicorn (extra ``push``): in the foreground for ``pubsub-jobs
push-server``, or in a thread for tests, benchmarks and scripts.

Why uvicorn: it is the most used and most maintained ASGI server, small (no worker
processes to manage: Cloud Run scales instances, not processes), with a C HTTP parser
(httptools) and a graceful shutdown that waits for open requests, which is what a stopping
Cloud Run instance needs.

Concurrency is bounded twice: ``concurrency`` jobs run at once (a pool of that many
threads), and at most ``max_connections`` connections and requests are held (uvicorn's
``limit_concurrency``; the ones beyond get 503, which Pub/Sub redelivers later). Set the
Cloud Run service's own ``--concurrency`` to ``concurrency`` so Cloud Run starts instances
rather than queueing requests in one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.push.asgi import PushASGIApp
from pubsub_jobs.push.handler import DEFAULT_CONCURRENCY, PushHandler

try:
    import uvicorn
except ImportError as exc:
    raise ConfigurationError(
        "the push server needs the push extra: pip install 'pubsub-jobs[push]' (or mount "
        "pubsub_jobs.push.PushASGIApp or PushWSGIApp in a server of your own)"
    ) from exc

from pubsub_jobs._http.serving import (  # noqa: E402 - after the extra's message
    QuietServer,
    base_url,
    bind_socket,
    serve_in_thread,
)

log = logging.getLogger(__name__)

#: Seconds open requests may take to finish after a stop is asked (Cloud Run gives 10).
DEFAULT_SHUTDOWN_TIMEOUT = 8.0


class PushServer:
    """Serves a :class:`~pubsub_jobs.push.asgi.PushASGIApp` for ``queues`` on
    ``host:port`` (port 0: a free one, see :attr:`port` once started).

    ``options`` go to :class:`~pubsub_jobs.push.handler.PushHandler`. :meth:`run` serves in
    the calling thread until :meth:`request_stop`; :meth:`start` serves in a thread of its
    own until :meth:`stop` (or use it as a context manager).
    """

    def __init__(
        self,
        queues: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_connections: int | None = None,
        shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT,
        access_log: bool = False,
        **options: Any,
    ) -> None:
        self.app = PushASGIApp(queues, concurrency=concurrency, **options)
        self.host = host
        self.port = port
        self.concurrency = concurrency
        self.max_connections = max_connections or max(64, 4 * concurrency)
        if self.max_connections <= concurrency:
            raise ConfigurationError(
                f"max_connections ({self.max_connections}) must exceed concurrency "
                f"({concurrency}): requests wait for a job thread on a connection"
            )
        self.shutdown_timeout = shutdown_timeout
        self.access_log = access_log
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def handler(self) -> PushHandler:
        return self.app.handler

    @property
    def url(self) -> str:
        """The server's base URL (``http://host:port``); Pub/Sub pushes to ``/push/QUEUE``."""
        return base_url(self.host, self.port)

    def run(self) -> None:
        """Serve in this thread until :meth:`request_stop`; then let open requests finish
        within ``shutdown_timeout``. Installs no signal handler (the command line does)."""
        self.app.start()
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = self._server = QuietServer(self._config())
        self._log_started()
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
            self.app.close()

    def start(self, timeout: float = 30.0) -> PushServer:
        """Serve in a thread of its own; returns once the server accepts connections."""
        self.app.start()
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        server = self._server = QuietServer(self._config())
        try:
            self._thread = serve_in_thread(server, sock, "pubsub-jobs-push-server", timeout)
        except ConfigurationError as exc:
            self.stop()
            raise ConfigurationError(f"the push server did not start on {self.url}{exc}") from None
        self._log_started()
        return self

    def request_stop(self) -> None:
        """Ask the server to stop (safe from signal handlers and other threads)."""
        if self._server is not None:
            self._server.should_exit = True

    def stop(self, timeout: float | None = None) -> None:
        """Stop a server started with :meth:`start` and wait for it (idempotent)."""
        self.request_stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.shutdown_timeout + 5 if timeout is None else timeout)
        self.app.close()

    def __enter__(self) -> PushServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _config(self) -> uvicorn.Config:
        return uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="on",
            log_config=None,  # the application's logging (the command line sets it up)
            access_log=self.access_log,
            limit_concurrency=self.max_connections,
            timeout_graceful_shutdown=max(0, round(self.shutdown_timeout)),
            server_header=False,
        )

    def _log_started(self) -> None:
        log.info("push server on %s: POST /push/{%s}, %d job(s) at once, up to %d "
                 "connections", self.url, ",".join(self.app.handler.queues), self.concurrency,
                 self.max_connections)
