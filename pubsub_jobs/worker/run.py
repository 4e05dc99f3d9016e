"""Running a worker as a process: the jobs' modules imported, then one :class:`Worker`, or a
supervisor of ``options.processes`` worker processes, until a stop.

The command line (``pubsub-jobs worker``), the supervisor's processes
(:mod:`pubsub_jobs.worker._child`) and Django's ``pubsub_worker`` all build a
:class:`~pubsub_jobs.worker.WorkerOptions` and call :func:`run_worker`. It installs no
signal handler of its own: an entry point hands it its handler (``on_signals``), which runs
while the worker does (first signal: stop gracefully; second: at once).
"""

from __future__ import annotations

import faulthandler
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from pubsub_jobs._process import exit_now
from pubsub_jobs.settings import configure, get_settings
from pubsub_jobs.worker.options import WorkerOptions

__all__ = ["EXIT_FAILED", "STOP_GRACE", "OnSignals", "import_modules", "load_jobs",
           "run_worker"]

#: Exit codes: 0 a clean stop, 1 the worker failed (a stream ended: the message says why,
#: or a stop hung past the shutdown timeout plus STOP_GRACE: every thread's stack is logged).
EXIT_FAILED = 1
#: Seconds a stop may take beyond ``shutdown_timeout`` before the process is ended.
STOP_GRACE = 10.0


class OnSignals(Protocol):
    """An entry point's signal handler, as a context manager: while inside, the first
    SIGINT/SIGTERM calls ``on_first`` and the second ``on_second``, then leaves the process
    with ``second_message`` logged (``pubsub_jobs._process.stop_on_signals``)."""

    def __call__(
        self,
        on_first: Callable[[], None],
        *,
        on_second: Callable[[], None] | None = None,
        second_message: str = ...,
    ) -> AbstractContextManager[None]: ...


def run_worker(options: WorkerOptions, *, on_signals: OnSignals | None = None) -> int:
    """Run a worker (or a supervisor of ``options.processes``) until a stop, or until idle
    with ``burst``; returns the process exit code. Call it from the main thread. Without
    ``on_signals`` no signal handler is installed (a signal does what it did before)."""
    if options.processes is not None:
        return _run_supervisor(options, on_signals or _no_signals)
    load_jobs(options.modules)
    if options.middleware is not None:  # as PUBSUB_JOBS_MIDDLEWARE would, for enqueues too
        configure(**{**get_settings().model_dump(), "middleware": list(options.middleware)},
                  origin="the command line")
    from pubsub_jobs.worker.runner import Worker  # the Pub/Sub client library: here only
    from pubsub_jobs.worker.supervisor import watch_supervisor

    worker = Worker(options)
    deadline = options.shutdown_timeout + STOP_GRACE

    def stop() -> None:
        # A graceful stop ends within the shutdown timeout; should anything hang past it,
        # faulthandler (C code, which runs even while a job holds the GIL) writes every
        # thread's stack to stderr and exits 1, so an orchestrator never waits on us.
        faulthandler.dump_traceback_later(deadline, exit=True)
        worker.request_stop()

    with (on_signals or _no_signals)(
        stop,
        second_message="second signal: exiting now; unfinished jobs will be redelivered",
    ):
        watch_supervisor(stop)
        try:
            clean = worker.run()
        finally:
            faulthandler.cancel_dump_traceback_later()
    if worker.error is not None:
        print(f"pubsub-jobs worker: {worker.error}", file=sys.stderr)
        return EXIT_FAILED
    if not clean:
        # Jobs outlived the shutdown timeout: leave without joining their threads; their
        # messages are redelivered.
        exit_now(0)
    return 0


def load_jobs(modules: Sequence[str]) -> None:
    """Import the modules that register jobs; in a Django project (``DJANGO_SETTINGS_MODULE``)
    also set Django up and register its tasks."""
    if os.environ.get("DJANGO_SETTINGS_MODULE"):
        from pubsub_jobs.adapters.django.worker import setup_worker

        setup_worker(modules)
    else:
        import_modules(modules)


def import_modules(modules: Sequence[str]) -> None:
    """Import the modules that register jobs (the current directory is importable)."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in modules:
        importlib.import_module(name)


def _run_supervisor(options: WorkerOptions, on_signals: OnSignals) -> int:
    from pubsub_jobs.worker.status import StatusServer
    from pubsub_jobs.worker.supervisor import Supervisor

    supervisor = Supervisor(options)
    server = None
    if options.http_port is not None:
        server = StatusServer(supervisor.status, options.http_port, options.http_host).start()
    try:
        with on_signals(supervisor.request_stop, on_second=supervisor.kill,
                        second_message="second signal: killing the worker processes"):
            return supervisor.run()
    finally:
        if server is not None:
            server.stop()


@contextmanager
def _no_signals(
    on_first: Callable[[], None],
    *,
    on_second: Callable[[], None] | None = None,
    second_message: str = "",
) -> Iterator[None]:
    yield
