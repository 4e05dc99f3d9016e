"""What Cloud Tasks does for unique and rate-limited jobs, as the in-memory adapter models it
on its own clock: task names taken while a task waits and for an hour after it left, and a
queue's token bucket of ``rate_limit`` dispatches a second."""

from __future__ import annotations

import math
from datetime import datetime

from pubsub_jobs.unique import TOMBSTONE


class TaskNames:
    """Names of tasks (unique jobs' ids) Cloud Tasks would refuse: while the task waits,
    and for :data:`~pubsub_jobs.unique.TOMBSTONE` after it left (dispatched)."""

    def __init__(self) -> None:
        #: job id: when its task left, or None while it waits.
        self._left: dict[str, datetime | None] = {}

    def taken(self, job_id: str, now: datetime) -> bool:
        if job_id not in self._left:
            return False
        left = self._left[job_id]
        if left is None or now < left + TOMBSTONE:
            return True
        del self._left[job_id]
        return False

    def hold(self, job_id: str) -> None:
        """A task of this name now waits."""
        self._left[job_id] = None

    def leave(self, job_id: str, now: datetime) -> None:
        """The task left (was dispatched) at ``now``; its name stays taken an hour."""
        if job_id in self._left:
            self._left[job_id] = now

    def clear(self) -> None:
        self._left.clear()


class RateClock:
    """Per queue, a token bucket as Cloud Tasks (and its emulator) keeps one: it holds
    ``ceil(rate)`` tokens, starts full and refills at ``rate`` a second of the clock; each
    job released spends one."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, datetime]] = {}

    def take(self, queue: str, rate: float, now: datetime) -> bool:
        """Spend a token of ``queue``'s bucket at ``now``, if there is one."""
        capacity = float(max(1, math.ceil(rate)))
        tokens, at = self._buckets.get(queue, (capacity, now))
        if now > at:
            tokens = min(capacity, tokens + (now - at).total_seconds() * rate)
            at = now
        if tokens + 1e-9 < 1.0:
            self._buckets[queue] = (tokens, at)
            return False
        self._buckets[queue] = (tokens - 1.0, at)
        return True
