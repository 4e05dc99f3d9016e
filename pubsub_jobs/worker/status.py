"""The worker's HTTP port: ``/healthz``, ``/status`` (JSON) and ``/metrics`` (Prometheus).

What "stuck" means is in :mod:`pubsub_jobs.worker.health`. ``/healthz`` answers 503 when
stuck, so an orchestrator restarts the worker; ``/status`` always answers 200.

With ``--processes N`` the supervisor serves the port and aggregates its children's status,
which each child writes to a file every second (:class:`StatusFileWriter`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pubsub_jobs.delivery import COUNTERS
from pubsub_jobs.worker.metrics import prometheus_text

if TYPE_CHECKING:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

StatusSource = Callable[[], dict[str, Any]]


def aggregate(statuses: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One status for several worker processes: counts summed, stuck if any is stuck."""
    items = list(statuses)
    result: dict[str, Any] = {
        "status": "ok",
        "reasons": [],
        "processes": [],
        "queues": items[0]["queues"] if items else [],
        "in_flight": [],
        "last_activity": None,
    }
    for name in COUNTERS:
        result[name] = 0
    for item in items:
        for name in COUNTERS:
            result[name] += int(item.get(name, 0))
        result["in_flight"] += item.get("in_flight", [])
        result["reasons"] += [f"pid {item.get('pid')}: {r}" for r in item.get("reasons", [])]
        result["processes"].append({"pid": item.get("pid"), "status": item.get("status")})
        last = item.get("last_activity")
        if last and (result["last_activity"] is None or last > result["last_activity"]):
            result["last_activity"] = last
    if result["reasons"] or any(i.get("status") != "ok" for i in items):
        result["status"] = "stuck"
    return result


#: Connections the status port serves at once; more are closed at once (a probe retries).
MAX_CONNECTIONS = 16
#: Seconds a connection may take to send its request before it is dropped.
READ_TIMEOUT = 5.0


def _bounded_server(
    address: tuple[str, int], handler: type[BaseHTTPRequestHandler]
) -> ThreadingHTTPServer:
    """A threaded server with at most :data:`MAX_CONNECTIONS` connections at a time, so
    silent or slow clients cannot pile up threads. (``http.server`` is imported here: a
    worker without ``--http-port`` does not load it.)"""
    from http.server import ThreadingHTTPServer

    class BoundedServer(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 128  # the listen backlog: probes are not refused while busy

        def __init__(self) -> None:
            super().__init__(address, handler)
            self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self._slots.acquire(blocking=False):
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self._slots.release()

    return BoundedServer()


class StatusServer:
    """A small threaded HTTP server answering from a status source; stop() closes it."""

    def __init__(self, source: StatusSource, port: int, host: str = "127.0.0.1") -> None:
        handler = _handler(source)
        self._server = _bounded_server((host, port), handler)
        self.port: int = self._server.server_address[1]
        self.host = host
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="pubsub-jobs-http", daemon=True
        )

    def start(self) -> StatusServer:
        self._thread.start()
        log.info("status on http://%s:%d/status", self.host, self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler(source: StatusSource) -> type[BaseHTTPRequestHandler]:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT  # seconds without a byte before the connection is dropped
        _head = False

        def do_HEAD(self) -> None:  # noqa: N802 - load balancers probe with HEAD
            self._head = True
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            path = self.path.split("?", 1)[0]
            try:
                status = source()
            except Exception as exc:  # the port must answer even if the status fails
                log.exception("status failed")
                status = {"status": "stuck", "reasons": [f"status failed: {exc}"]}
            if path == "/healthz":
                ok = status.get("status") == "ok"
                body = b"ok\n" if ok else ("stuck: " + "; ".join(status["reasons"])).encode()
                self._send(200 if ok else 503, "text/plain; charset=utf-8", body)
            elif path == "/status":
                body = json.dumps(status, indent=2, default=str).encode()
                self._send(200, "application/json", body)
            elif path == "/metrics":
                try:
                    metrics = prometheus_text(status)
                except ImportError:
                    self._send(501, "text/plain", b"/metrics needs prometheus-client: pip "
                               b"install 'pubsub-jobs[prometheus]'\n")
                else:
                    self._send(200, "text/plain; version=0.0.4; charset=utf-8", metrics)
            else:
                self._send(404, "text/plain", b"try /healthz, /status or /metrics\n")

        def _send(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not self._head:
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Handler


class StatusFileWriter:
    """Writes a status source to a file every ``interval`` seconds (children of a supervisor)."""

    def __init__(self, source: StatusSource, path: Path, interval: float = 1.0) -> None:
        self.source = source
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pubsub-jobs-status-file",
                                        daemon=True)

    def start(self) -> StatusFileWriter:
        self._thread.start()
        return self

    def write(self) -> None:
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({**self.source(), "written_at": time.time()}, default=str))
        tmp.replace(self.path)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except OSError as exc:
                log.warning("could not write status file %s: %s", self.path, exc)

    def stop(self) -> None:
        self._stop.set()
        try:
            self.write()
        except OSError:
            pass
