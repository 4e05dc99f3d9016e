"""The errors the lowest modules of the core raise: the root :class:`JobError`, the wire
format's two, and :func:`describe`. They are apart so that :mod:`pubsub_jobs.errors`, which
names the message and outcome types its other errors carry, is imported by none of the
modules that define those types. Import them from :mod:`pubsub_jobs.errors`.
"""

from __future__ import annotations

__all__ = ["InvalidMessage", "JobError", "MessageTooLarge", "describe"]


class JobError(Exception):
    """Root of every error raised by pubsub-jobs."""


class InvalidMessage(JobError, ValueError):
    """A Pub/Sub message is not a job in wire format version 1."""


class MessageTooLarge(JobError, ValueError):
    """A job would exceed a Pub/Sub or Cloud Tasks size limit."""


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, as dead-letter copies and logs show it."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


for _error in (JobError, InvalidMessage, MessageTooLarge):
    _error.__module__ = "pubsub_jobs.errors"  # where they are imported from, and so shown
