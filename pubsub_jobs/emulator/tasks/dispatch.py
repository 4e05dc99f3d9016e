"""Sending tasks' HTTP requests: a thread that takes due attempts from the store and a pool
of threads that send them (``http.client``, connections kept alive per thread: no proxy, no
redirect followed, as a task's target answers it), each within the task's
``dispatch_deadline``.
"""

from __future__ import annotations

import http.client
import logging
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from pubsub_jobs.emulator.tasks.store import Dispatch, TaskStore

__all__ = ["Dispatcher", "send"]

logger = logging.getLogger(__name__)

#: The longest the dispatcher sleeps without looking again (a safety net: changes notify).
_MAX_WAIT = 1.0


_local = threading.local()


def _connection(scheme: str, netloc: str, deadline: float) -> http.client.HTTPConnection:
    """This thread's kept-alive connection to ``netloc`` (made on first use)."""
    pool: dict[tuple[str, str], http.client.HTTPConnection] = _local.__dict__.setdefault(
        "pool", {})
    connection = pool.get((scheme, netloc))
    if connection is None:
        connection_type = (http.client.HTTPSConnection if scheme == "https"
                           else http.client.HTTPConnection)
        connection = pool[(scheme, netloc)] = connection_type(netloc, timeout=deadline)
    connection.timeout = deadline
    if connection.sock is not None:
        connection.sock.settimeout(deadline)
    return connection


def _drop(scheme: str, netloc: str) -> None:
    connection = _local.__dict__.get("pool", {}).pop((scheme, netloc), None)
    if connection is not None:
        connection.close()


def send(
    method: str, url: str, headers: dict[str, str], body: bytes, deadline: float
) -> tuple[int | None, str]:
    """Send one request; (HTTP status, "") when an answer came within ``deadline`` seconds,
    else (None, what went wrong). Connections are kept alive per thread and target; one
    that the target closed meanwhile is opened again once."""
    parts = urllib.parse.urlsplit(url)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    for again in (True, False):
        connection = _connection(parts.scheme, parts.netloc, deadline)
        reused = connection.sock is not None
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.will_close:
                _drop(parts.scheme, parts.netloc)
            return response.status, ""
        except TimeoutError:
            _drop(parts.scheme, parts.netloc)
            return None, f"no answer within the dispatch deadline (timed out after {deadline:g} s)"
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as exc:
            _drop(parts.scheme, parts.netloc)
            if not (again and reused):  # a kept-alive connection the target had closed
                return None, f"{type(exc).__name__}: {exc}"
        except (OSError, http.client.HTTPException) as exc:
            _drop(parts.scheme, parts.netloc)
            return None, f"{type(exc).__name__}: {exc}"
    return None, "unreachable"  # pragma: no cover - the loop always returns


class Dispatcher:
    """Dispatches the store's due tasks until :meth:`stop`; at most ``threads`` at once."""

    def __init__(self, store: TaskStore, *, threads: int = 64) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=threads,
                                        thread_name_prefix="tasks-emulator-dispatch")
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="tasks-emulator-dispatcher",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop taking tasks; attempts under way are not waited for (their tasks stay)."""
        with self.store.changed:
            self._stopping = True
            self.store.changed.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        store = self.store
        while True:
            with store.changed:
                if self._stopping:
                    return
                taken, wait = store.take_due()
                if not taken:
                    store.changed.wait(_MAX_WAIT if wait is None else min(wait, _MAX_WAIT))
                    continue
            for dispatch in taken:
                self._pool.submit(self._attempt, dispatch)

    def _attempt(self, dispatch: Dispatch) -> None:
        try:
            status, error = send(dispatch.method, dispatch.url, dispatch.headers,
                                 dispatch.body, dispatch.deadline)
        except Exception as exc:  # never lose the attempt: it counts as failed
            logger.exception("dispatching %s failed", dispatch.task)
            status, error = None, f"{type(exc).__name__}: {exc}"
        if status is None or not 200 <= status < 300:
            logger.info("task %s: %s", dispatch.task, error or f"HTTP status {status}")
        self.store.finish(dispatch, status, error)
