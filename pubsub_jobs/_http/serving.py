"""Serving an ASGI app on uvicorn, as the push server and the dashboard do: a socket bound
by the same rules, a server that leaves signals alone, serving in a thread of its own.

Needs uvicorn (the ``push`` or ``dashboard`` extra); the server that imports this module
names its extra first, when uvicorn is missing.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import uvicorn

from pubsub_jobs.errors import ConfigurationError

__all__ = ["QuietServer", "base_url", "bind_socket", "serve_in_thread"]


def bind_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (port 0: any free one), for uvicorn to serve on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigurationError(f"cannot listen on {host}:{port}: {exc}") from None
    return sock


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 address in brackets."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def serve_in_thread(
    server: QuietServer, sock: socket.socket, name: str, timeout: float
) -> threading.Thread:
    """Run ``server`` on ``sock`` in a daemon thread; return once it accepts connections, or
    raise :class:`ConfigurationError` (its message is the reason, if any) after ``timeout``."""
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            server.run(sockets=[sock])
        except BaseException as exc:  # noqa: B036 - reported below, not lost
            failed.append(exc)
        finally:
            sock.close()

    thread = threading.Thread(target=serve, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise ConfigurationError(f": {failed[0]!r}" if failed else "")
    return thread


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: the library installs no handlers, and the
    command line has its own (first signal: stop gracefully; second: exit at once)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
