"""Starting, probing and stopping Google's Pub/Sub emulator (with pubsub-jobs' fixes)."""

from __future__ import annotations

import http.client
import logging
import os
import urllib.error
import urllib.request
from pathlib import Path

from pubsub_jobs.emulator.cache import cache_root
from pubsub_jobs.emulator.installation import find_pubsub_emulator
from pubsub_jobs.emulator.network import check_loopback, hostport, port_taken
from pubsub_jobs.emulator.process import (
    EmulatorProcess,
    log_file,
    spawn,
    stop_by_pid_file,
    wait_until_ready,
)
from pubsub_jobs.errors import EmulatorAlreadyRunning, EmulatorError

__all__ = [
    "DEFAULT_PUBSUB_PORT",
    "pid_file",
    "pubsub_emulator_ready",
    "start_pubsub_emulator",
    "stop_detached_pubsub_emulator",
]

logger = logging.getLogger(__name__)

DEFAULT_PUBSUB_PORT = 8085
"""The Pub/Sub emulator's own default port."""


def pubsub_emulator_ready(host: str, timeout: float = 1.0) -> bool:
    """True when ``GET http://host/`` answers ``Ok``, as the Pub/Sub emulator does; an open
    TCP port alone (a stale or foreign process) is not enough."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(f"http://{host}/", timeout=timeout) as response:
            return bool(response.status == 200 and response.read(64).strip() == b"Ok")
    except (OSError, ValueError, urllib.error.URLError, http.client.HTTPException):
        return False


def pid_file(port: int) -> Path:
    """Where ``start_pubsub_emulator(port, detach=True)`` records the emulator it started."""
    return cache_root() / f"emulator-{port}.pid"


def start_pubsub_emulator(
    port: int = DEFAULT_PUBSUB_PORT,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    data_dir: Path | None = None,
    timeout: float = 60.0,
    detach: bool = False,
    _apply_fix: bool = True,
) -> EmulatorProcess:
    """Start the Pub/Sub emulator on ``host:port`` (loopback only) and wait until ``GET /``
    answers ``Ok``.

    Output goes to ``log_path`` (default ``~/.cache/pubsub-jobs/emulator-PORT.log``). The
    emulator keeps its state in memory; ``data_dir``, if given, is its working directory and
    receives an ``env.yaml`` as gcloud writes it. ``detach=True`` starts it in a session of its
    own that outlives this process and records its pid for
    :func:`stop_detached_pubsub_emulator`. ``_apply_fix=False`` runs a buggy jar unfixed (to
    reproduce the bug).
    """
    check_loopback(host)
    address = hostport(host, port)
    if port_taken(host, port):
        if pubsub_emulator_ready(address):
            raise EmulatorAlreadyRunning(
                f"A Pub/Sub emulator is already running at {address} "
                f"(use it: export PUBSUB_EMULATOR_HOST={address}; if it was started with "
                f"`pubsub-jobs emulator start`, stop it with `pubsub-jobs emulator stop "
                f"--port {port}`). It may lack pubsub-jobs' fix if something else started it.",
                address,
            )
        raise EmulatorError(
            f"Port {port} on {host} is already in use by another program (not a ready Pub/Sub "
            "emulator). Stop it or choose another port."
        )
    command = find_pubsub_emulator().command(port, host, apply_fix=_apply_fix)
    if command.patched:
        logger.info("Applying pubsub-jobs' fix to the Pub/Sub emulator: %s", command.description)
    elif "UNPATCHED" in command.description:
        logger.warning("%s", command.description)

    log_path = log_file(log_path, f"emulator-{port}.log")
    if data_dir is not None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            (data_dir / "env.yaml").write_text(f"PUBSUB_EMULATOR_HOST: {address}\n")
        except OSError as exc:
            raise EmulatorError(f"Cannot prepare the data_dir {data_dir}: {exc}") from exc
    pid_path = pid_file(port) if detach else None
    env = {**os.environ, **command.env}
    popen = spawn(command, log_path, env=env, hostport=address, pid_file=pid_path, cwd=data_dir)
    process = EmulatorProcess(popen, address, log_path, command, pid_path)
    wait_until_ready(
        process,
        pubsub_emulator_ready,
        timeout,
        probe=f"`GET http://{address}/` with Ok",
        detail=f" ({command.description})",
    )
    logger.info("Pub/Sub emulator ready at %s (pid %d, log %s)", address, popen.pid, log_path)
    return process


def stop_detached_pubsub_emulator(port: int = DEFAULT_PUBSUB_PORT, timeout: float = 10.0) -> bool:
    """Stop the emulator that ``start_pubsub_emulator(port, detach=True)`` started, found by its
    pid file and checked to still be a java process running the emulator jar on that port.
    True if one was stopped; False if none was running (a stale pid file is removed)."""
    return stop_by_pid_file(
        pid_file(port), lambda cmdline: _is_our_emulator(cmdline, port), timeout
    )


def _is_our_emulator(cmdline: list[str], port: int) -> bool:
    if not cmdline or not Path(cmdline[0]).name.startswith("java"):
        return False
    return any("cloud-pubsub-emulator" in arg for arg in cmdline) and f"--port={port}" in cmdline
