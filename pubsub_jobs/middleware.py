"""Middleware: hooks around enqueue and perform, for logging, metrics and tracing.

Subclass :class:`Middleware` and override the hooks you need; every hook is a no-op here.
``before_*`` hooks run in the order the middleware were given, ``after_*`` hooks in reverse,
so the first middleware wraps all the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pubsub_jobs.adapters.base import EnqueuedJob
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import JobMessage
    from pubsub_jobs.worker.perform import Outcome


class Middleware:
    """Base class of middleware; all hooks do nothing."""

    def before_enqueue(self, message: JobMessage) -> JobMessage:
        """Called before publishing; may return a changed message (e.g. with attributes)."""
        return message

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        """Called after publishing, with the result or the error."""

    def before_perform(self, context: JobContext) -> None:
        """Called in the worker before the job runs."""

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        """Called in the worker after the job ran (or failed), before ack/nack."""


class MiddlewareChain:
    """Runs a sequence of middleware's hooks in the documented order."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        self._reversed = tuple(reversed(self.middleware))

    def __bool__(self) -> bool:
        return bool(self.middleware)

    def before_enqueue(self, message: JobMessage) -> JobMessage:
        for m in self.middleware:
            message = m.before_enqueue(message)
        return message

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        for m in self._reversed:
            m.after_enqueue(message, result, error)

    def before_perform(self, context: JobContext) -> None:
        for m in self.middleware:
            m.before_perform(context)

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        for m in self._reversed:
            m.after_perform(context, outcome)
