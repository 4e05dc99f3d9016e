"""The middleware's hooks: the :class:`Middleware` base class and the :class:`MiddlewareChain`
that runs a sequence of them in the documented order (see :mod:`pubsub_jobs.middleware`).

They sit in the core because the core's adapter (:class:`pubsub_jobs.adapter.Adapter`) runs
the enqueue hooks; import them from :mod:`pubsub_jobs.middleware`, with the built-ins and the
loader.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome


class Middleware:
    """Base class of middleware; all hooks do nothing.

    One instance serves every thread of a worker: keep per-job state keyed by the job's
    context (``id(context)``: the same object reaches every perform hook of one run), never
    in plain attributes. Where each hook runs:

    - ``before_enqueue``/``after_enqueue``: the thread that calls ``enqueue``.
    - ``before_perform``/``after_perform``/``on_rejected``: the worker thread that received
      the message, for sync and ``async`` jobs alike.
    - ``perform_context``: wherever the job itself runs: its worker thread for a sync job,
      the event loop's task for an ``async`` job. Context variables set while it is entered
      (a current OpenTelemetry span, your own ``ContextVar``) are therefore visible inside
      the job, which ``before_perform`` cannot guarantee for ``async`` jobs.
    """

    def before_enqueue(self, message: JobMessage) -> JobMessage:
        """Called before publishing; may return a changed message (e.g. with attributes)."""
        return message

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        """Called after publishing, with the result or the error."""

    def before_perform(self, context: JobContext) -> None:
        """Called in the worker before the job runs."""

    def perform_context(self, context: JobContext) -> AbstractContextManager[object]:
        """A context manager entered around the job call itself, in the job's own thread or
        task (see the class docstring); the job's exception passes through it. Do not
        swallow that exception: the worker decides what a failure means."""
        return nullcontext()

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        """Called in the worker after the job ran (or failed), before ack/nack."""

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        """Called for a message dead-lettered before a job could run: not wire format v1
        (``invalid_message``), a job nobody registered (``unknown_job``) or arguments that
        do not fit (``invalid_arguments``). ``attributes`` are the message's, unchecked:
        treat them as untrusted input."""


class MiddlewareChain:
    """Runs a sequence of middleware's hooks in the documented order."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = tuple(middleware)
        self._reversed = tuple(reversed(self.middleware))
        self._contexts = tuple(
            m for m in self.middleware
            if type(m).perform_context is not Middleware.perform_context
        )

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

    def perform_context(self, context: JobContext) -> AbstractContextManager[None]:
        """Every middleware's ``perform_context``, the first one outermost."""
        if not self._contexts:
            return nullcontext()
        return self._nested(context)

    @contextmanager
    def _nested(self, context: JobContext) -> Iterator[None]:
        with ExitStack() as stack:
            for m in self._contexts:
                stack.enter_context(m.perform_context(context))
            yield

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        for m in self._reversed:
            m.after_perform(context, outcome)

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        for m in self._reversed:
            m.on_rejected(queue, attributes, outcome)
