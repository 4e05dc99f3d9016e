"""The jobs the benchmark enqueues and the worker runs (imported by the worker subprocess too)."""

from __future__ import annotations

import queue
import time

from bench import _marks
from pubsub_jobs import current_job, job

#: ``(job_id, perf_counter())`` of each :func:`stamp` job when it started.
STARTED: queue.SimpleQueue[tuple[str, float]] = queue.SimpleQueue()


@job(queue="bench")
def noop(payload: str) -> None:
    """Does nothing, so what is measured is pubsub-jobs' own cost per job."""


@job(queue="bench")
def count(i: int, payload: str) -> None:
    """A no-op that counts itself (:mod:`bench._marks`): the job every system runs in the
    headline, so "the last job's side effect" is the same for all."""
    _marks.hit(i)


@job(queue="bench")
def stamp(payload: str) -> None:
    """Records when it started, for enqueue-to-start latency (worker in the same process)."""
    STARTED.put((current_job().job_id, time.perf_counter()))


@job(queue="bench")
def sleepy(seconds: float) -> None:
    """Takes ``seconds``, for how a burst spreads across several workers."""
    time.sleep(seconds)
