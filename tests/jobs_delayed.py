"""Jobs the delayed-job tests enqueue; each run is recorded with its attempt and due time."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from pubsub_jobs import Retry, current_job, job
from pubsub_jobs.message import utcnow

QUEUE = "delayed"


@dataclass(frozen=True)
class Run:
    tag: str
    job_id: str
    attempt: int
    scheduled_at: datetime | None
    ran_at: datetime


RUNS: list[Run] = []
_lock = threading.Lock()


def record(tag: str) -> Run:
    ctx = current_job()
    run = Run(tag, ctx.job_id, ctx.attempt, ctx.scheduled_at, utcnow())
    with _lock:
        RUNS.append(run)
    return run


def runs(tag: str) -> list[Run]:
    with _lock:
        return [r for r in RUNS if r.tag == tag]


@job(queue=QUEUE)
def remember(tag: str) -> None:
    """Succeeds, recording when it ran."""
    record(tag)


@job(queue=QUEUE, max_attempts=2, retry_wait=timedelta(seconds=2))
def always_fails_later(tag: str) -> None:
    """Fails every time; each retry waits 2 s in Cloud Tasks; dead-lettered after 2 attempts."""
    record(tag)
    raise RuntimeError(f"failing on purpose ({tag})")


@job(queue=QUEUE, max_attempts=3)
def asks_to_retry_once(tag: str) -> None:
    """Asks to be run again after 1 s the first time, then succeeds."""
    if record(tag).attempt == 1:
        raise Retry("not yet", delay=timedelta(seconds=1))


@job(queue=QUEUE, retry_on=(ValueError,), retry_wait=lambda attempt: 60 * attempt)
def waits_longer_each_time(tag: str) -> None:
    """Fails with ValueError (retried after 60 s x attempt) or, for tag "fatal", TypeError."""
    record(tag)
    raise TypeError(tag) if tag == "fatal" else ValueError(tag)


@job(queue=QUEUE)
def retry_without_delay(tag: str) -> None:
    """``Retry()`` with no delay: an ordinary nack."""
    record(tag)
    raise Retry()
