"""Addresses and ports of the local emulators: loopback only, free ports, ``host:port``."""

from __future__ import annotations

import errno
import ipaddress
import socket

from pubsub_jobs.errors import EmulatorError

__all__ = ["check_loopback", "free_port", "hostport", "port_taken"]


def hostport(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (for tests; another process may take it)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    except OSError as exc:
        raise EmulatorError(f"No free port on {host}: {exc}") from exc


def port_taken(host: str, port: int) -> bool:
    """Whether something listens on ``host:port`` (as the JVM would see it when binding)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        # As the JVM does: TIME_WAIT leftovers must not count, only a listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise EmulatorError(f"Cannot bind {hostport(host, port)}: {exc}") from exc
    return False


def check_loopback(host: str) -> None:
    """Raise :class:`EmulatorError` unless ``host`` is a loopback address (or ``localhost``):
    the emulators have no authentication."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise EmulatorError(
            f"The emulator binds loopback addresses only (got host={host!r}); it has no "
            "authentication. Use 127.0.0.1, or the Docker compose file to expose it."
        )
