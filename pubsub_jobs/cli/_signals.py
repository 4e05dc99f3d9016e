"""The command line's one signal handler: the first SIGINT/SIGTERM asks to stop, the second
exits at once. The library never installs signal handlers; commands do, through this, and
so do the other entry points that run a worker (the supervisor's child processes, Django's
``pubsub_worker``), handing it to :func:`pubsub_jobs.worker.run.run_worker`."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

from pubsub_jobs.worker.run import exit_now

__all__ = ["EXIT_INTERRUPTED", "exit_now", "stop_on_signals"]

log = logging.getLogger(__name__)

#: Exit code after a second signal (128 + SIGINT, as shells report an interrupted command).
EXIT_INTERRUPTED = 130


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
