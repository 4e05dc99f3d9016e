"""What a process of pubsub-jobs sets up at its start, and how it leaves: logging to standard
error (:func:`setup_logging`), the one signal handler (:func:`stop_on_signals`: the first
SIGINT/SIGTERM asks to stop, the second exits at once) and :func:`exit_now`.

The library never installs signal handlers; only entry points call this: the command line,
the supervisor's child processes and Django's ``pubsub_worker`` (which hand
:func:`stop_on_signals` to :func:`pubsub_jobs.worker.run.run_worker`)."""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_INTERRUPTED", "exit_now", "setup_logging", "stop_on_signals"]

log = logging.getLogger(__name__)

#: Exit code after a second signal (128 + SIGINT, as shells report an interrupted command).
EXIT_INTERRUPTED = 130


def setup_logging(level: str, log_format: str) -> None:
    """Log to standard error at ``level``, as ``text`` or ``json`` (Cloud Logging's)."""
    from pubsub_jobs.middleware.logging import JsonFormatter, TextFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    logging.basicConfig(level=level.upper(), handlers=[handler])


def exit_now(code: int, *, dump_threads: bool = False) -> None:
    """Leave the process at once, without waiting for threads that would block a normal
    exit (a job that outlived the shutdown timeout). With ``dump_threads`` every thread's
    stack goes to standard error first, so a hang can be read from the log."""
    if dump_threads:
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@contextmanager
def stop_on_signals(
    on_first: Callable[[], None],
    *,
    on_second: Callable[[], None] | None = None,
    first_message: str = "stopping (again to exit at once)",
    second_message: str = "second signal: exiting now",
) -> Iterator[None]:
    """While inside, the first SIGINT/SIGTERM logs ``first_message`` and calls ``on_first``
    (which must only set flags: it runs in the signal handler); the second calls
    ``on_second`` and leaves the process at once. The previous handlers come back on leaving.
    Outside the main thread (where Python cannot install handlers) this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        name = signal.Signals(signum).name
        if count == 1:
            log.warning("%s: %s", name, first_message)
            on_first()
            return
        log.warning("%s: %s", name, second_message)
        if on_second is not None:
            on_second()
        exit_now(EXIT_INTERRUPTED)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
