"""``pubsub-jobs emulator start|stop``: the local Pub/Sub and Cloud Tasks emulators on 127.0.0.1.

:func:`register` adds the command to the ``pubsub-jobs`` parser; the work is done by
:mod:`pubsub_jobs.emulator`, which scripts can use directly.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import TYPE_CHECKING, Any

from pubsub_jobs._process import stop_on_signals
from pubsub_jobs.errors import EmulatorError
from pubsub_jobs.settings import EMULATOR_PROJECT, get_settings

if TYPE_CHECKING:
    from pubsub_jobs.emulator import EmulatorProcess

#: The Cloud Tasks location of the emulator's queue when no ``cloud_tasks_location`` is set.
DEFAULT_LOCATION = "us-central1"


def register(sub: Any) -> None:
    """Add ``emulator start|stop`` to the subcommands ``sub``."""
    # Every command's parser is built on every run: the default ports are read in _ports(),
    # so that the worker's start does not import the emulator machinery (~15 ms) for them.
    p = sub.add_parser("emulator",
                       help="start or stop the local Pub/Sub and Cloud Tasks emulators")
    p.add_argument("action", choices=["start", "stop"])
    p.add_argument("--port", type=int, help="Pub/Sub emulator port")
    p.add_argument("--tasks-port", type=int, help="Cloud Tasks emulator port")
    p.add_argument("--no-cloud-tasks", action="store_true",
                   help="only the Pub/Sub emulator (no delayed jobs)")
    p.add_argument("--foreground", action="store_true", help="run until Ctrl-C")
    p.set_defaults(func=_cmd_emulator)


def _cmd_emulator(args: argparse.Namespace) -> int:
    """Start (or stop) the Pub/Sub emulator and the Cloud Tasks emulator on 127.0.0.1."""
    _ports(args)
    if args.action == "stop":
        return _stop(args)
    if not args.foreground:
        return _start(args, [], detach=True)
    stop = threading.Event()
    started: list[EmulatorProcess] = []
    with stop_on_signals(
        on_first=stop.set,
        on_second=lambda: _kill(started),
        first_message="stopping the emulators (again to kill them at once)",
        second_message="second signal: killing the emulators",
    ):
        try:
            code = _start(args, started, detach=False, stop=stop)
            if code == 0:
                while not stop.wait(0.5):
                    pass
            return code
        finally:
            for process in reversed(started):
                process.stop()


def _ports(args: argparse.Namespace) -> None:
    """The emulators' default ports where ``--port`` and ``--tasks-port`` were not given."""
    from pubsub_jobs.emulator import DEFAULT_PUBSUB_PORT, DEFAULT_TASKS_PORT

    if args.port is None:
        args.port = DEFAULT_PUBSUB_PORT
    if args.tasks_port is None:
        args.tasks_port = DEFAULT_TASKS_PORT


def _stop(args: argparse.Namespace) -> int:
    from pubsub_jobs.emulator import stop_detached_pubsub_emulator, stop_detached_tasks_emulator

    try:
        stopped = stop_detached_pubsub_emulator(args.port)
        print("stopped" if stopped else f"no emulator of ours is running on port {args.port}")
        if not args.no_cloud_tasks:
            stopped = stop_detached_tasks_emulator(args.tasks_port)
            print("stopped the Cloud Tasks emulator" if stopped else
                  f"no Cloud Tasks emulator of ours is running on port {args.tasks_port}")
    except EmulatorError as exc:
        print(f"pubsub-jobs emulator: {exc}", file=sys.stderr)
        return 1
    return 0


def _start(
    args: argparse.Namespace,
    started: list[EmulatorProcess],
    *,
    detach: bool,
    stop: threading.Event | None = None,
) -> int:
    """Start the emulators that do not answer yet, appending them to ``started``; print the
    ``export`` lines that reach them. In the foreground, a ``stop`` set meanwhile skips the
    emulators not started yet."""
    from pubsub_jobs.emulator import (
        pubsub_emulator_ready,
        start_pubsub_emulator,
        start_tasks_emulator,
        tasks_emulator_ready,
    )

    settings = get_settings()
    project = settings.project_id
    location = settings.cloud_tasks_location or DEFAULT_LOCATION
    exports: dict[str, str] = {}
    try:
        host = f"127.0.0.1:{args.port}"
        if pubsub_emulator_ready(host):
            print(f"# the Pub/Sub emulator already answers on {host}", file=sys.stderr)
        else:
            proc = start_pubsub_emulator(args.port, detach=detach)
            started.append(proc)
            print(f"# Pub/Sub emulator ready on {proc.host} (pid {proc.pid}, log {proc.log_path}"
                  f"{', with its bug fixes applied' if proc.patched else ''})", file=sys.stderr)
        exports["PUBSUB_EMULATOR_HOST"] = host
        if not project:
            exports["PUBSUB_JOBS_PROJECT_ID"] = EMULATOR_PROJECT
        if not args.no_cloud_tasks and not (stop is not None and stop.is_set()):
            tasks_host = f"127.0.0.1:{args.tasks_port}"
            if tasks_emulator_ready(tasks_host):
                print(f"# the Cloud Tasks emulator already answers on {tasks_host}",
                      file=sys.stderr)
            else:
                # Its delayed-jobs queue exists from the start; `bootstrap` creates it too.
                queue_path = (f"projects/{project or EMULATOR_PROJECT}/locations/{location}"
                              f"/queues/{settings.cloud_tasks_queue}")
                tasks = start_tasks_emulator(args.tasks_port, detach=detach, queues=[queue_path])
                started.append(tasks)
                print(f"# Cloud Tasks emulator ready on {tasks.host} (pid {tasks.pid}, log "
                      f"{tasks.log_path}), queue {queue_path}", file=sys.stderr)
            exports["CLOUD_TASKS_EMULATOR_HOST"] = tasks_host
            if not settings.cloud_tasks_location:
                exports["PUBSUB_JOBS_CLOUD_TASKS_LOCATION"] = location
    except EmulatorError as exc:
        print(f"pubsub-jobs emulator: {exc}", file=sys.stderr)
        return 1
    for name, value in exports.items():
        print(f"export {name}={value}", flush=True)
    return 0


def _kill(processes: list[EmulatorProcess]) -> None:
    """On a second signal, as the process leaves at once: SIGKILL the emulators it started
    (they run in process groups of their own, which the terminal's Ctrl-C does not reach)."""
    for process in processes:
        process.kill()
