"""Jobs of the exactly-once tests (tests/emulator/test_exactly_once.py).

Each run appends a line (``started N PID`` or ``ran N PID``) to the file named by
``$JOBS_EXACTLY_ONCE_RUNS``, so a test counts runs and duplicates, in a worker process too.
The queue's declaration (``exactly_once=True``) is the test's: this module declares none, so
importing it changes no other test's queues.
"""

from __future__ import annotations

import os
import time

from pubsub_jobs import job

RUNS_ENV = "JOBS_EXACTLY_ONCE_RUNS"
QUEUE = "exactly-once"


def _record(event: str, n: int) -> None:
    # One short line per write, appended: whole lines even from several threads.
    with open(os.environ[RUNS_ENV], "a") as runs:
        runs.write(f"{event} {n} {os.getpid()}\n")


@job(queue=QUEUE)
def pay(n: int) -> None:
    _record("ran", n)


@job(queue=QUEUE)
def pay_slowly(n: int, seconds: float) -> None:
    _record("started", n)
    time.sleep(seconds)
    _record("ran", n)
