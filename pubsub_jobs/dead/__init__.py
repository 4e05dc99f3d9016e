"""The dead set: the jobs a queue gave up on, to list, show, retry and purge.

- :mod:`~pubsub_jobs.dead.job`: :class:`DeadJob`, one dead message as every tool reads it
  (the command line, the dashboard, the test helpers, the in-memory adapter). It belongs to
  the core layer: it imports nothing but the core, so the in-memory adapter can build it.
- :mod:`~pubsub_jobs.dead.subscription`: :class:`DeadSet`, the one reader of a queue's
  dead-letter subscription (pull and hold, then acknowledge or release).
- :mod:`~pubsub_jobs.dead.operations`: :func:`list_dead`, :func:`show`, :func:`retry` and
  :func:`purge` against Pub/Sub, for scripts; ``pubsub-jobs dead ...`` and the dashboard
  call them.

Every name below loads on first use: the core imports :mod:`pubsub_jobs.dead.job`, which
runs this file, and must not load the Google client libraries the other two need.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pubsub_jobs.dead.job import DERIVED_REASON, REASONS, DeadJob
    from pubsub_jobs.dead.operations import (
        PurgeSummary,
        RetrySummary,
        list_dead,
        purge,
        retry,
        show,
    )
    from pubsub_jobs.dead.subscription import DeadSet

__all__ = [
    "DERIVED_REASON",
    "REASONS",
    "DeadJob",
    "DeadSet",
    "PurgeSummary",
    "RetrySummary",
    "list_dead",
    "purge",
    "retry",
    "show",
]


def __getattr__(name: str) -> Any:
    if name in ("DERIVED_REASON", "REASONS", "DeadJob"):
        from pubsub_jobs.dead import job

        return getattr(job, name)
    if name == "DeadSet":
        from pubsub_jobs.dead import subscription

        return subscription.DeadSet
    if name in __all__:
        from pubsub_jobs.dead import operations

        return getattr(operations, name)
    raise AttributeError(f"module 'pubsub_jobs.dead' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
