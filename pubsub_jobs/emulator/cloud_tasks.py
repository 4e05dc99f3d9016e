"""Starting, probing and stopping a Cloud Tasks emulator (PyPI ``gcloud-tasks-emulator``).

Google ships no Cloud Tasks emulator. ``gcloud-tasks-emulator`` serves the Cloud Tasks gRPC
API and dispatches HTTP tasks when due, but it pins an old protobuf, so it runs from a
virtualenv of its own, created on first use under the user's cache directory
(``~/.cache/pubsub-jobs/tasks-emulator-venv``), never in the project's environment. Its own
command line binds every interface; we run it through ``_tasks_server.py`` (beside this
module, run by path with that virtualenv's Python), which binds the one loopback address
asked for, and answers as Cloud Tasks does where the emulator did not (creating a queue
that exists is ALREADY_EXISTS, getting a missing one NOT_FOUND). Clients reach it through an
insecure gRPC channel (``CLOUD_TASKS_EMULATOR_HOST``). It does not deduplicate task names,
cannot get or delete tasks, and retries a failed dispatch at once rather than with a backoff.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import shutil
import subprocess  # noqa: S404 - we run python/pip with argument lists, no shell
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import grpc

from pubsub_jobs.emulator.cache import cache_root
from pubsub_jobs.emulator.network import check_loopback, hostport, port_taken
from pubsub_jobs.emulator.process import (
    EmulatorCommand,
    EmulatorProcess,
    log_file,
    log_tail,
    spawn,
    stop_by_pid_file,
    wait_until_ready,
)
from pubsub_jobs.errors import EmulatorAlreadyRunning, EmulatorError

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TASKS_PORT",
    "PYTHON_ENV",
    "REQUIREMENT",
    "SERVER",
    "TasksEmulatorProcess",
    "emulator_python",
    "start_tasks_emulator",
    "stop_detached_tasks_emulator",
    "tasks_emulator_ready",
]

logger = logging.getLogger(__name__)

DEFAULT_TASKS_PORT = 9022
"""gcloud-tasks-emulator's own default port."""

REQUIREMENT = "gcloud-tasks-emulator==0.6.2"
"""What the private virtualenv installs (it brings google-cloud-tasks 2.x and protobuf < 5)."""

PYTHON_ENV = "PUBSUB_JOBS_TASKS_EMULATOR_PYTHON"
"""Environment variable naming an interpreter that already has gcloud-tasks-emulator (no venv)."""

DEFAULT_MAX_RETRIES = 100
"""Dispatches of a failing task before the emulator drops it: it retries at once, without the
backoff Cloud Tasks has, so an unbounded number would spin on a deleted topic forever."""

SERVER = Path(__file__).with_name("_tasks_server.py")
"""The program that runs the emulator in its virtualenv (it never imports pubsub_jobs)."""

# Detached emulators started before the server became a file of the package ran a copy of it
# written to the cache folder under this name: `stop` still recognises them.
_OLD_SERVER_NAME = "pubsub_jobs_tasks_emulator.py"
_STAMP_NAME = ".pubsub-jobs-installed"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_GRPC_OPTIONS = [("grpc.enable_http_proxy", 0)]


# --------------------------------------------------------------------------- the virtualenv


def _venv_dir() -> Path:
    return cache_root() / "tasks-emulator-venv"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _stamp_text() -> str:
    return f"{REQUIREMENT}\npython {sys.version_info.major}.{sys.version_info.minor}\n"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``, so parallel test sessions build the venv only once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: Sequence[str], log_path: Path, what: str, timeout: float) -> None:
    with open(log_path, "ab") as log:
        log.write(f"# pubsub-jobs: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            done = subprocess.run(  # noqa: S603 - fixed argument list
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmulatorError(f"{what} failed ({exc}). See {log_path}") from exc
    if done.returncode != 0:
        raise EmulatorError(
            f"{what} failed with exit code {done.returncode}. Last lines of {log_path}:\n"
            f"{log_tail(log_path)}"
        )


def emulator_python(*, install_timeout: float = 900.0) -> Path:
    """The interpreter that runs the emulator: ``$PUBSUB_JOBS_TASKS_EMULATOR_PYTHON``, else the
    private virtualenv, created and filled from PyPI the first time (which needs network)."""
    configured = os.environ.get(PYTHON_ENV)
    if configured:
        python = Path(configured).expanduser()
        if not os.access(python, os.X_OK):
            raise EmulatorError(f"{PYTHON_ENV}={configured} is not an executable interpreter")
        return python
    venv = _venv_dir()
    python = _venv_python(venv)
    stamp = venv / _STAMP_NAME
    if _stamp_ok(stamp, python):
        return python
    try:
        with _locked(venv.with_name(venv.name + ".lock")):
            if _stamp_ok(stamp, python):  # another process built it while we waited
                return python
            _install(venv, python, stamp, install_timeout)
    except OSError as exc:
        raise EmulatorError(f"Cannot set up the Cloud Tasks emulator in {venv}: {exc}") from exc
    return python


def _install(venv: Path, python: Path, stamp: Path, install_timeout: float) -> None:
    """Create ``venv`` afresh and install :data:`REQUIREMENT` into it; ``stamp`` marks it done."""
    log_path = venv.with_name(venv.name + "-install.log")
    log_path.write_bytes(b"")
    logger.info("Installing %s into %s (first use; log %s)", REQUIREMENT, venv, log_path)
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(venv)], log_path,
         f"Creating a virtualenv for the Cloud Tasks emulator in {venv}", 300)
    _run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
          "--quiet", REQUIREMENT], log_path,
         f"Installing {REQUIREMENT} (from PyPI) into {venv}", install_timeout)
    stamp.write_text(_stamp_text())


def _stamp_ok(stamp: Path, python: Path) -> bool:
    try:
        return stamp.read_text() == _stamp_text() and os.access(python, os.X_OK)
    except OSError:
        return False


# --------------------------------------------------------------------------- the emulator


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
    max_retries: int = DEFAULT_MAX_RETRIES,
) -> TasksEmulatorProcess:
    """Start the Cloud Tasks emulator on ``host:port`` (loopback only) and wait until it answers
    ``ListQueues``.

    The first call creates its virtualenv (see :func:`emulator_python`), which is not counted
    in ``timeout``. ``queues`` (full names, ``projects/P/locations/L/queues/Q``) exist from the
    start. Output goes to ``log_path`` (default ``~/.cache/pubsub-jobs/tasks-emulator-PORT.log``).
    ``detach=True`` starts it in a session of its own that outlives this process and records
    its pid for :func:`stop_detached_tasks_emulator`.
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
    python = emulator_python()
    argv = [str(python), str(SERVER), f"--host={host}", f"--port={port}",
            f"--max-retries={max_retries}", *(f"--queue={q}" for q in queues)]
    command = EmulatorCommand(
        argv=argv, env={}, patched=False,
        description=f"Cloud Tasks emulator ({REQUIREMENT}, {python})",
    )
    log_path = log_file(log_path, f"tasks-emulator-{port}.log")
    # It only calls the local Pub/Sub emulator: never through a proxy.
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
    names = {SERVER.name, _OLD_SERVER_NAME}
    return (
        any(Path(arg).name in names for arg in cmdline[1:2])
        and f"--port={port}" in cmdline
    )
