"""Start and stop a Cloud Tasks emulator (PyPI ``gcloud-tasks-emulator``) for development and tests.

Google ships no Cloud Tasks emulator. ``gcloud-tasks-emulator`` serves the Cloud Tasks gRPC
API and dispatches HTTP tasks when due, but it pins an old protobuf, so it runs from a
virtualenv of its own, created on first use under the user's cache directory
(``~/.cache/pubsub-jobs/tasks-emulator-venv``), never in the project's environment. Its own
command line binds every interface; we run it through a small launcher that binds the one
loopback address asked for. Clients reach it through an insecure gRPC channel
(``CLOUD_TASKS_EMULATOR_HOST``). It does not deduplicate task names, cannot get or delete
tasks, and retries a failed dispatch at once rather than with a backoff.

Run ``python -m pubsub_jobs._tasks_emulator start|stop [--port N]`` for a command line.
"""

from __future__ import annotations

import argparse
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

from pubsub_jobs._emulator import (
    EmulatorAlreadyRunning,
    EmulatorCommand,
    EmulatorError,
    EmulatorProcess,
    _cache_root,
    _check_loopback,
    _hostport,
    _log_file,
    _log_tail,
    _port_taken,
    _spawn,
    _stop_detached,
    _wait_until_ready,
    _write_atomically,
    run_until_signalled,
    stop_on_signal,
)

__all__ = [
    "DEFAULT_PORT",
    "REQUIREMENT",
    "TasksEmulatorProcess",
    "emulator_python",
    "start_tasks_emulator",
    "stop_detached",
    "tasks_emulator_ready",
]

logger = logging.getLogger(__name__)

# Imported dynamically for mypy's sake: see pubsub_jobs.adapters.cloud_tasks.
tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")

DEFAULT_PORT = 9022
"""gcloud-tasks-emulator's own default port."""

REQUIREMENT = "gcloud-tasks-emulator==0.6.2"
"""What the private virtualenv installs (it brings google-cloud-tasks 2.x and protobuf < 5)."""

PYTHON_ENV = "PUBSUB_JOBS_TASKS_EMULATOR_PYTHON"
"""Environment variable naming an interpreter that already has gcloud-tasks-emulator (no venv)."""

DEFAULT_MAX_RETRIES = 100
"""Dispatches of a failing task before the emulator drops it: it retries at once, without the
backoff Cloud Tasks has, so an unbounded number would spin on a deleted topic forever."""

_LAUNCHER_NAME = "pubsub_jobs_tasks_emulator.py"
_STAMP_NAME = ".pubsub-jobs-installed"
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
_GRPC_OPTIONS = [("grpc.enable_http_proxy", 0)]

# Runs inside the emulator's virtualenv: imports only what gcloud-tasks-emulator brings.
_LAUNCHER = '''\
"""pubsub-jobs: run gcloud-tasks-emulator bound to one address (its own CLI binds [::])."""
import argparse
import logging
import signal
import sys
import time
from concurrent import futures

import grpc
from google.cloud.tasks_v2 import Queue

from gcloud_tasks_emulator import server as emulator

_NOISE = ("[TASKS] Task %s is scheduled for future", "[TASKS] Processing next task")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-retries", type=int, default=-1)
    parser.add_argument("--queue", action="append", default=[])
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stdout,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The emulator logs every pending task every 0.1 s: keep the log readable.
    logging.getLogger("gcloud-tasks-emulator").addFilter(
        lambda record: not str(record.msg).startswith(_NOISE)
    )
    state = emulator.QueueState(
        emulator.DEFAULT_TARGET_HOST, emulator.DEFAULT_TARGET_PORT, args.max_retries
    )
    for name in args.queue:
        state.create_queue(name.rsplit("/", 2)[0], Queue(name=name))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    emulator.add_CloudTasksServicer_to_server(emulator.Greeter(state), server)
    address = "[%s]:%d" % (args.host, args.port) if ":" in args.host else (
        "%s:%d" % (args.host, args.port))
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        print("pubsub-jobs: cannot bind %s" % address, file=sys.stderr, flush=True)
        return 3
    server.start()
    processor = emulator.Processor(state)
    processor.daemon = True  # its per-queue threads inherit it
    processor.start()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    logging.getLogger("pubsub-jobs").info("Cloud Tasks emulator listening on %s", address)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
'''


# --------------------------------------------------------------------------- the virtualenv


def _venv_dir() -> Path:
    return _cache_root() / "tasks-emulator-venv"


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
    with open(log_path, "ab") as log_file:
        log_file.write(f"# pubsub-jobs: {' '.join(argv)}\n".encode())
        log_file.flush()
        try:
            done = subprocess.run(  # noqa: S603 - fixed argument list
                list(argv), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                timeout=timeout, check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmulatorError(f"{what} failed ({exc}). See {log_path}") from exc
    if done.returncode != 0:
        raise EmulatorError(
            f"{what} failed with exit code {done.returncode}. Last lines of {log_path}:\n"
            f"{_log_tail(log_path)}"
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
    with _locked(venv.with_name(venv.name + ".lock")):
        if _stamp_ok(stamp, python):  # another process built it while we waited
            return python
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
    return python


def _stamp_ok(stamp: Path, python: Path) -> bool:
    try:
        return stamp.read_text() == _stamp_text() and os.access(python, os.X_OK)
    except OSError:
        return False


def _launcher() -> Path:
    """Write the launcher beside the venv (rewritten only when pubsub-jobs changed it)."""
    path = _cache_root() / _LAUNCHER_NAME
    if not path.is_file() or path.read_text() != _LAUNCHER:
        _write_atomically(path, _LAUNCHER)
    return path


# --------------------------------------------------------------------------- readiness


def tasks_emulator_ready(host: str, timeout: float = 1.0) -> bool:
    """True when a Cloud Tasks API answers ``ListQueues`` on ``host`` (an open port is not
    enough: a stale or foreign process may hold it)."""
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


# --------------------------------------------------------------------------- processes


class TasksEmulatorProcess(EmulatorProcess):
    """A running Cloud Tasks emulator that this process started; ``stop()`` ends only it."""

    def __repr__(self) -> str:
        return f"<TasksEmulatorProcess {self.host} pid={self.pid}>"

    def env(self) -> dict[str, str]:
        """The environment a client needs to reach this emulator."""
        return {"CLOUD_TASKS_EMULATOR_HOST": self.host}


def _pid_file(port: int) -> Path:
    return _cache_root() / f"tasks-emulator-{port}.pid"


def start_tasks_emulator(
    port: int = DEFAULT_PORT,
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
    its pid for :func:`stop_detached`.
    """
    _check_loopback(host)
    hostport = _hostport(host, port)
    if _port_taken(host, port):
        if tasks_emulator_ready(hostport):
            raise EmulatorAlreadyRunning(
                f"A Cloud Tasks emulator is already running at {hostport} (use it: export "
                f"CLOUD_TASKS_EMULATOR_HOST={hostport}).",
                hostport,
            )
        raise EmulatorError(
            f"Port {port} on {host} is already in use by another program (not a Cloud Tasks "
            "emulator). Stop it or choose another port."
        )
    python = emulator_python()
    launcher = _launcher()
    argv = [str(python), str(launcher), f"--host={host}", f"--port={port}",
            f"--max-retries={max_retries}", *(f"--queue={q}" for q in queues)]
    command = EmulatorCommand(
        argv=argv, env={}, patched=False,
        description=f"Cloud Tasks emulator ({REQUIREMENT}, {python})",
    )
    log_path = _log_file(log_path, f"tasks-emulator-{port}.log")
    # It only calls the local Pub/Sub emulator: never through a proxy.
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    pid_file = _pid_file(port) if detach else None
    popen = _spawn(command, log_path, env=env, hostport=hostport, pid_file=pid_file)
    process = TasksEmulatorProcess(popen, hostport, log_path, command, pid_file)
    _wait_until_ready(
        process,
        tasks_emulator_ready,
        timeout,
        label="Cloud Tasks emulator",
        probe=f"ListQueues on {hostport}",
    )
    logger.info("Cloud Tasks emulator ready at %s (pid %d, log %s)", hostport, popen.pid, log_path)
    return process


def _is_our_emulator(cmdline: list[str], port: int) -> bool:
    return (
        any(Path(arg).name == _LAUNCHER_NAME for arg in cmdline[1:2])
        and f"--port={port}" in cmdline
    )


def stop_detached(port: int = DEFAULT_PORT, timeout: float = 10.0) -> bool:
    """Stop the emulator ``start_tasks_emulator(port, detach=True)`` started, found by its pid
    file and checked to still be our launcher on that port. True if one was stopped."""
    return _stop_detached(_pid_file(port), lambda cmdline: _is_our_emulator(cmdline, port), timeout)


# --------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    """``start [--port N] [--foreground] [--queue NAME ...]`` / ``stop [--port N]``."""
    parser = argparse.ArgumentParser(
        prog="python -m pubsub_jobs._tasks_emulator",
        description="Start or stop the Cloud Tasks emulator (gcloud-tasks-emulator).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start on 127.0.0.1, wait until ready, print exports")
    start.add_argument("--port", type=int, default=DEFAULT_PORT)
    start.add_argument("--host", default="127.0.0.1")
    start.add_argument("--queue", action="append", default=[], metavar="NAME",
                       help="projects/P/locations/L/queues/Q to create at start")
    start.add_argument("--foreground", action="store_true", help="run until Ctrl-C")
    stop = sub.add_parser("stop", help="stop an emulator started by `start`")
    stop.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if args.command == "stop":
        stopped = stop_detached(args.port)
        print("Stopped the Cloud Tasks emulator." if stopped else
              f"No Cloud Tasks emulator started by pubsub-jobs runs on port {args.port}.",
              file=sys.stderr)
        return 0
    stop_event = stop_on_signal() if args.foreground else None
    try:
        process = start_tasks_emulator(args.port, host=args.host, queues=args.queue,
                                       detach=not args.foreground)
    except EmulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"Cloud Tasks emulator: pid {process.pid}, log {process.log_path}", file=sys.stderr)
    for name, value in process.env().items():
        print(f"export {name}={value}", flush=True)
    if stop_event is not None:
        run_until_signalled([process], stop_event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
