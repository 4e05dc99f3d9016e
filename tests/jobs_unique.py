"""Jobs the unique and rate-limited job tests enqueue; each run is recorded by tag."""

from __future__ import annotations

import threading

from pubsub_jobs import current_job, job

QUEUE = "unique"
#: Declared with rate_limit by the tests that use it (and forgotten after them).
PACED = "paced"

RAN: list[tuple[str, str, int]] = []  # (tag, job id, n)
_lock = threading.Lock()


def runs(tag: str) -> list[tuple[str, int]]:
    """(job id, n) of each run of ``tag``, in the order they ran."""
    with _lock:
        return [(job_id, n) for t, job_id, n in RAN if t == tag]


@job(queue=QUEUE)
def remember(tag: str, n: int = 0) -> None:
    with _lock:
        RAN.append((tag, current_job().job_id, n))


@job(queue=PACED)
def paced(tag: str, n: int = 0) -> None:
    with _lock:
        RAN.append((tag, current_job().job_id, n))
