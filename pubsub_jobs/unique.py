"""Unique jobs: the key, the window and the job id they derive, shared by every adapter.

``job.using(unique_for=timedelta(minutes=10)).enqueue(...)`` enqueues at most one job per key
per window. The key is ``unique_key`` when given, else the job name and its encoded
arguments in a canonical form (sorted JSON). Windows are aligned to the Unix epoch:
``floor(now / unique_for)``. The job id derives from queue, key and window (a readable
prefix, then a hash), so every process computes the same one, and the Cloud Tasks task
named after it is refused while it exists (and for about an hour after it left): the second
enqueue of a window meets ``AlreadyExists`` and returns ``duplicate=True`` with that id.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.message import JobMessage

#: The shortest and longest window: a second, and as far ahead as Cloud Tasks holds a task.
MIN_UNIQUE_FOR = timedelta(seconds=1)
MAX_UNIQUE_FOR = timedelta(days=30)
#: The longest ``unique_key``: the key is hashed, but it is read in logs and errors.
MAX_UNIQUE_KEY = 1000
#: How long Cloud Tasks refuses a task's name after the task was dispatched or deleted.
TOMBSTONE = timedelta(hours=1)


def unique_seconds(unique_for: timedelta | float) -> float:
    """``unique_for`` in seconds, or :class:`~pubsub_jobs.errors.ConfigurationError` saying
    why it is refused (a second to 30 days)."""
    if isinstance(unique_for, bool) or not isinstance(unique_for, timedelta | int | float):
        raise ConfigurationError(
            f"unique_for is a timedelta or seconds, not {unique_for!r}")
    seconds = (unique_for.total_seconds() if isinstance(unique_for, timedelta)
               else float(unique_for))
    if not (MIN_UNIQUE_FOR.total_seconds() <= seconds <= MAX_UNIQUE_FOR.total_seconds()):
        raise ConfigurationError(
            f"unique_for={seconds:g} s is out of range: a unique job's window is 1 second to "
            "30 days (the longest Cloud Tasks holds a task); give a window in that range")
    return seconds


def check_unique_key(unique_key: object, unique_for: object) -> None:
    """Refuse a ``unique_key`` without ``unique_for``, or one that is not a short text."""
    if unique_key is None:
        return
    if unique_for is None:
        raise ConfigurationError(
            "unique_key= goes with unique_for= (how long the key stays unique): give both")
    if not isinstance(unique_key, str) or not unique_key:
        raise ConfigurationError(f"unique_key is a non-empty string, not {unique_key!r}")
    if len(unique_key) > MAX_UNIQUE_KEY:
        raise ConfigurationError(
            f"unique_key is {len(unique_key)} characters; at most {MAX_UNIQUE_KEY}: pass a "
            "shorter key (an id, or a hash of what makes the job unique)")


def unique_options(unique_for: timedelta | float | None, unique_key: str | None,
                   job_id: str | None) -> dict[str, Any]:
    """The :class:`~pubsub_jobs.jobs.EnqueueOptions` changes of ``using(unique_for=...,
    unique_key=...)``, validated (nothing when neither is given)."""
    check_unique_key(unique_key, unique_for)
    if unique_for is None:
        return {}
    if job_id is not None:
        raise ConfigurationError("a unique job's id derives from its key and window: give "
                                 "unique_for= or job_id=, not both")
    return {"unique_for": unique_seconds(unique_for), "unique_key": unique_key}


def default_key(job_name: str, args: list[Any], kwargs: dict[str, Any]) -> str:
    """The key of a unique job without ``unique_key``: its name and encoded arguments as
    sorted, compact JSON (the same arguments give the same key in any process)."""
    return json.dumps([job_name, args, kwargs], sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def window_of(now: datetime, seconds: float) -> int:
    """The epoch-aligned window ``now`` is in: ``floor(unix time / seconds)``."""
    return math.floor(now.timestamp() / seconds)


def unique_job_id(queue: str, key: str, seconds: float, window: int) -> str:
    """``unique-<window>-<hash>``: the job id of key ``key`` in queue ``queue`` during
    window number ``window`` of ``seconds`` (the window length is hashed too, so windows of
    another length never share an id)."""
    material = "\0".join((queue, key, f"{seconds:.6f}", str(window))).encode()
    return f"unique-{window}-{hashlib.sha256(material).hexdigest()[:32]}"


def with_unique_id(message: JobMessage, now: datetime) -> JobMessage:
    """``message`` with the job id its key and the window of ``now`` derive (as it is when
    it is not a unique job)."""
    unique = message.unique
    if unique is None:
        return message
    key, seconds = unique
    job_id = unique_job_id(message.queue, key, seconds, window_of(now, seconds))
    return message if message.job_id == job_id else replace(message, job_id=job_id)
