"""Starting, probing and stopping pubsub-jobs' own Cloud Tasks emulator.

Google ships no Cloud Tasks emulator; pubsub-jobs has its own (:mod:`pubsub_jobs.emulator.tasks`),
a gRPC server of the Cloud Tasks v2 API that dispatches HTTP tasks as Cloud Tasks does. It
runs as a process of its own (``python -m pubsub_jobs.emulator.tasks``, with this
interpreter), so a test can kill it and it does not share the test's GIL; it binds the one
loopback address asked for, and is ready when it answers ``ListQueues``. Clients reach it
through an insecure gRPC channel (``CLOUD_TASKS_EMULATOR_HOST``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from pubsub_jobs.emulator.cache import cache_root
from pubsub_jobs.emulator.network import check_loopback, hostport, port_taken
from pubsub_jobs.emulator.process import (
    EmulatorCommand,
    EmulatorProcess,
    log_file,
    spawn,
    stop_by_pid_file,
    wait_until_ready,
)
from pubsub_jobs.errors import EmulatorAlreadyRunning, EmulatorError

__all__ = [
    "DEFAULT_TASKS_PORT",
    "SERVER_MODULE",
    "TasksEmulatorProcess",
    "start_tasks_emulator",
    "stop_detached_tasks_emulator",
    "tasks_emulator_ready",
]

logger = logging.getLogger(__name__)

DEFAULT_TASKS_PORT = 9022
"""The Cloud Tasks emulator's default port (as the emulators before it)."""

SERVER_MODULE = "pubsub_jobs.emulator.tasks"
"""The module the emulator's process runs (``python -m``)."""

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
# No proxy; and while the server is not listening yet, try to connect again every 50 ms
# (gRPC's default waits a second), so that readiness is seen as soon as it comes.
_GRPC_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 100),
]


def tasks_emulator_ready(host: str, timeout: float = 1.0) -> bool:
    """True when a Cloud Tasks API answers ``ListQueues`` on ``host`` (an open port is not
    enough: a stale or foreign process may hold it)."""
    # Imported here, and dynamically for mypy's sake (see pubsub_jobs.adapters.cloud_tasks).
    tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
    channel = grpc.insecure_channel(host, options=_GRPC_OPTIONS)
    try:
        list_queues = channel.unary_unary(
            "/google.cloud.tasks.v2.CloudTasks/ListQueues",
            request_serializer=tasks_v2.ListQueuesRequest.serialize,
            response_deserializer=tasks_v2.ListQueuesResponse.deserialize,
        )
        list_queues(
            tasks_v2.ListQueuesRequest(parent="projects/probe/locations/probe"),
            timeout=timeout,
            wait_for_ready=True,
        )
        return True
    except grpc.RpcError:
        return False
    finally:
        channel.close()


class TasksEmulatorProcess(EmulatorProcess):
    """A running Cloud Tasks emulator that this process started; ``stop()`` ends only it."""

    label = "Cloud Tasks emulator"

    def __repr__(self) -> str:
        return f"<TasksEmulatorProcess {self.host} pid={self.pid}>"

    def env(self) -> dict[str, str]:
        """The environment a client needs to reach this emulator."""
        return {"CLOUD_TASKS_EMULATOR_HOST": self.host}


def _pid_file(port: int) -> Path:
    return cache_root() / f"tasks-emulator-{port}.pid"


def start_tasks_emulator(
    port: int = DEFAULT_TASKS_PORT,
    *,
    host: str = "127.0.0.1",
    log_path: Path | None = None,
    timeout: float = 60.0,
    detach: bool = False,
    queues: Sequence[str] = (),
    tombstone_seconds: float | None = None,
) -> TasksEmulatorProcess:
    """Start the Cloud Tasks emulator on ``host:port`` (loopback only) and wait until it answers
    ``ListQueues``.

    ``queues`` (full names, ``projects/P/locations/L/queues/Q``) exist from the start.
    ``tombstone_seconds`` is how long a task's name stays taken after the task left (default
    ``$PUBSUB_JOBS_TASKS_TOMBSTONE_SECONDS``, else an hour). Output goes to ``log_path``
    (default ``~/.cache/pubsub-jobs/tasks-emulator-PORT.log``). ``detach=True`` starts it in
    a session of its own that outlives this process and records its pid for
    :func:`stop_detached_tasks_emulator`.
    """
    check_loopback(host)
    address = hostport(host, port)
    if port_taken(host, port):
        if tasks_emulator_ready(address):
            raise EmulatorAlreadyRunning(
                f"A Cloud Tasks emulator is already running at {address} (use it: export "
                f"CLOUD_TASKS_EMULATOR_HOST={address}).",
                address,
            )
        raise EmulatorError(
            f"Port {port} on {host} is already in use by another program (not a Cloud Tasks "
            "emulator). Stop it or choose another port."
        )
    argv = [sys.executable, "-m", SERVER_MODULE, f"--host={host}", f"--port={port}",
            *(f"--queue={q}" for q in queues)]
    if tombstone_seconds is not None:
        argv.append(f"--tombstone-seconds={tombstone_seconds:g}")
    command = EmulatorCommand(argv=argv, env={}, patched=False,
                              description="Cloud Tasks emulator (pubsub-jobs' own)")
    log_path = log_file(log_path, f"tasks-emulator-{port}.log")
    # It calls local targets (the Pub/Sub emulator): never through a proxy.
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    pid_path = _pid_file(port) if detach else None
    popen = spawn(command, log_path, env=env, hostport=address, pid_file=pid_path)
    process = TasksEmulatorProcess(popen, address, log_path, command, pid_path)
    wait_until_ready(process, tasks_emulator_ready, timeout, probe=f"ListQueues on {address}")
    logger.info("Cloud Tasks emulator ready at %s (pid %d, log %s)", address, popen.pid, log_path)
    return process


def stop_detached_tasks_emulator(port: int = DEFAULT_TASKS_PORT, timeout: float = 10.0) -> bool:
    """Stop the emulator ``start_tasks_emulator(port, detach=True)`` started, found by its pid
    file and checked to still be our server program on that port. True if one was stopped."""
    return stop_by_pid_file(
        _pid_file(port), lambda cmdline: _is_our_emulator(cmdline, port), timeout
    )


def _is_our_emulator(cmdline: list[str], port: int) -> bool:
    return SERVER_MODULE in cmdline[1:3] and f"--port={port}" in cmdline
