"""Jobs of the ordered-jobs tests, on queue ``ordered`` (declared ordered, with a short
backoff and 5 delivery attempts): each run records its key, number and attempt, and the
most runs of one key seen at once."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

from pubsub_jobs import JobContext, current_job, job, queue
from pubsub_jobs.middleware import Middleware

QUEUE = "ordered"
queue(QUEUE, ordered=True, min_backoff=0.2, max_backoff=1, max_delivery_attempts=5)

#: (job, key, n, attempt) in the order the runs started.
RAN: list[tuple[str, str, int, int]] = []
#: The most runs of one key at once, by key.
MOST_AT_ONCE: dict[str, int] = defaultdict(int)
_running: dict[str, int] = defaultdict(int)
_lock = threading.Lock()


def reset() -> None:
    with _lock:
        RAN.clear()
        MOST_AT_ONCE.clear()
        _running.clear()


def _run(name: str, key: str, n: int, seconds: float) -> int:
    attempt = current_job().attempt
    with _lock:
        RAN.append((name, key, n, attempt))
        _running[key] += 1
        MOST_AT_ONCE[key] = max(MOST_AT_ONCE[key], _running[key])
    try:
        time.sleep(seconds)
    finally:
        with _lock:
            _running[key] -= 1
    return attempt


def runs(key: str) -> list[tuple[str, int, int]]:
    """``(job, n, attempt)`` of ``key``'s runs, in the order they started."""
    with _lock:
        return [(name, n, attempt) for name, k, n, attempt in RAN if k == key]


@job(queue=QUEUE)
def step(key: str, n: int, seconds: float = 0.0) -> None:
    _run("step", key, n, seconds)


@job(queue=QUEUE)
def flaky(key: str, n: int) -> None:
    """Fails its first attempt."""
    if _run("flaky", key, n, 0.0) == 1:
        raise RuntimeError("first attempt fails")


@job(queue=QUEUE)
def doomed(key: str, n: int) -> None:
    """Always fails."""
    _run("doomed", key, n, 0.0)
    raise RuntimeError("always fails")


@job(queue=QUEUE, retry_wait=3600)
def waits_long(key: str, n: int) -> None:
    """Fails its first attempt and asks for an hour's wait before the next."""
    if _run("waits_long", key, n, 0.0) == 1:
        raise RuntimeError("first attempt fails")


class FailsOnce(Middleware):
    """Raises (an unexpected error of a middleware) before job ``job_id`` runs for the first
    time: the worker nacks that message and puts its key back."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.raised = threading.Event()

    def before_perform(self, context: JobContext) -> None:
        if context.job_id == self.job_id and not self.raised.is_set():
            self.raised.set()
            raise RuntimeError("a middleware's bug")
