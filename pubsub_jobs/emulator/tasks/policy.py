"""What a queue allows: its rate limits (a token bucket), its retry policy (backoff and when
to give up), with Cloud Tasks' defaults for what a queue leaves unset and its bounds.

Defaults, as Cloud Tasks documents them for queues created through its API: 500 dispatches a
second, 1,000 at once, 100 attempts, a backoff from 0.1 s to 1 hour that doubles 16 times.
``max_burst_size`` is output only: Cloud Tasks picks it from the rate ("generally at least
equal to max_dispatches_per_second"); the emulator takes the rate rounded up, 1 to 500.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc

from pubsub_jobs.emulator.tasks.names import ApiError

__all__ = [
    "MAX_CONCURRENT",
    "MAX_RATE",
    "RetryPolicy",
    "TokenBucket",
    "burst_for",
    "fill_queue_defaults",
    "retry_policy",
]

DEFAULT_RATE = 500.0
MAX_RATE = 500.0
DEFAULT_CONCURRENT = 1000
MAX_CONCURRENT = 5000
DEFAULT_ATTEMPTS = 100
DEFAULT_MIN_BACKOFF = 0.1
DEFAULT_MAX_BACKOFF = 3600.0
DEFAULT_DOUBLINGS = 16


def burst_for(rate: float) -> int:
    """The bucket size the emulator gives a queue of ``rate`` dispatches a second."""
    return max(1, min(500, math.ceil(rate)))


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate`` a second from the time of each call; starts
    full. ``take(now)`` spends one if there is one."""

    def __init__(self, rate: float, capacity: int, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = float(capacity)
        self._at = now

    def _refill(self, now: float) -> None:
        if now > self._at:
            self.tokens = min(float(self.capacity), self.tokens + (now - self._at) * self.rate)
        self._at = max(self._at, now)

    def available(self, now: float) -> int:
        """Whole tokens there are at ``now``."""
        self._refill(now)
        return int(self.tokens + 1e-9)

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens + 1e-9 < 1.0:
            return False
        self.tokens -= 1.0
        return True

    def next_token_in(self, now: float) -> float:
        """Seconds until a whole token is there (0 if one is)."""
        self._refill(now)
        return max(0.0, (1.0 - self.tokens) / self.rate)


def _seconds(value: Any) -> float:
    return float(value.total_seconds()) if isinstance(value, timedelta) else float(value or 0)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A retry config with the defaults filled in, in seconds."""

    max_attempts: int = DEFAULT_ATTEMPTS
    max_retry_duration: float = 0.0
    min_backoff: float = DEFAULT_MIN_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    max_doublings: int = DEFAULT_DOUBLINGS

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt: ``min_backoff`` doubled
        ``max_doublings`` times, then growing linearly by the last doubled step, at most
        ``max_backoff`` (10 s, 300 s, 3 doublings: 10, 20, 40, 80, 160, 240, 300, 300...)."""
        retry = max(0, attempts - 1)
        doublings = min(retry, self.max_doublings)
        step = self.min_backoff * 2.0**doublings
        wait = step + (retry - doublings) * step
        return min(self.max_backoff, wait)

    def gives_up(self, attempts: int, since_first: float) -> bool:
        """Whether a task that failed its ``attempts``-th attempt, ``since_first`` seconds
        after its first, is done with: only when both ``max_attempts`` and
        ``max_retry_duration`` are used up (-1 attempts and 0 s: never)."""
        duration_done = self.max_retry_duration <= 0 or since_first >= self.max_retry_duration
        if self.max_attempts == -1:
            return self.max_retry_duration > 0 and duration_done
        return attempts >= self.max_attempts and duration_done


def _check_retry(config: Any, what: str) -> None:
    bad = None
    if config.max_attempts < -1:
        bad = "max_attempts must be -1 (unlimited) or more"
    elif config.max_doublings < 0:
        bad = "max_doublings must not be negative"
    elif any(_seconds(getattr(config, f)) < 0
             for f in ("min_backoff", "max_backoff", "max_retry_duration")):
        bad = "durations must not be negative"
    elif (_seconds(config.max_backoff) and
          _seconds(config.min_backoff) > _seconds(config.max_backoff)):
        bad = "min_backoff must not be more than max_backoff"
    if bad:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT, f"{what}.retry_config: {bad}")


def retry_policy(queue_config: Any, task_config: Any = None) -> RetryPolicy:
    """The queue's retry config (its unset fields Cloud Tasks' defaults), overridden by the
    fields the task's own config sets."""
    merged: dict[str, Any] = {
        "max_attempts": queue_config.max_attempts or DEFAULT_ATTEMPTS,
        "max_retry_duration": _seconds(queue_config.max_retry_duration),
        "min_backoff": _seconds(queue_config.min_backoff) or DEFAULT_MIN_BACKOFF,
        "max_backoff": _seconds(queue_config.max_backoff) or DEFAULT_MAX_BACKOFF,
        "max_doublings": queue_config.max_doublings or DEFAULT_DOUBLINGS,
    }
    if task_config is not None:
        for field in ("max_attempts", "max_doublings"):
            if getattr(task_config, field):
                merged[field] = getattr(task_config, field)
        for field in ("max_retry_duration", "min_backoff", "max_backoff"):
            if _seconds(getattr(task_config, field)):
                merged[field] = _seconds(getattr(task_config, field))
    merged["max_backoff"] = max(merged["max_backoff"], merged["min_backoff"])
    return RetryPolicy(**merged)


def check_task_retry(config: Any) -> None:
    """``INVALID_ARGUMENT`` for a task's retry config Cloud Tasks refuses."""
    _check_retry(config, "task")


def fill_queue_defaults(queue: Any) -> None:
    """Check ``queue``'s rate limits and retry config (``INVALID_ARGUMENT`` beyond Cloud
    Tasks' bounds) and fill in its defaults, as a queue reads back from Cloud Tasks."""
    limits = queue.rate_limits
    rate = limits.max_dispatches_per_second
    if rate < 0 or rate > MAX_RATE:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"queue.rate_limits.max_dispatches_per_second must be more than 0 and "
                       f"at most {MAX_RATE:g} (got {rate:g})")
    concurrent = limits.max_concurrent_dispatches
    if concurrent < 0 or concurrent > MAX_CONCURRENT:
        raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"queue.rate_limits.max_concurrent_dispatches must be more than 0 and at "
                       f"most {MAX_CONCURRENT} (got {concurrent})")
    _check_retry(queue.retry_config, "queue")
    limits.max_dispatches_per_second = rate or DEFAULT_RATE
    limits.max_concurrent_dispatches = concurrent or DEFAULT_CONCURRENT
    limits.max_burst_size = burst_for(limits.max_dispatches_per_second)
    filled = retry_policy(queue.retry_config)
    config = queue.retry_config
    config.max_attempts = filled.max_attempts
    config.min_backoff = timedelta(seconds=filled.min_backoff)
    config.max_backoff = timedelta(seconds=filled.max_backoff)
    config.max_doublings = filled.max_doublings
    config.max_retry_duration = timedelta(seconds=filled.max_retry_duration)
