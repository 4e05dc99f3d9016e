"""Middleware: hooks around enqueue and perform, for logging, metrics and tracing.

Subclass :class:`Middleware` and override the hooks you need; every hook is a no-op here.
``before_*`` hooks run in the order the middleware were given, ``after_*`` hooks (and
:meth:`~Middleware.on_rejected`) in reverse, and :meth:`~Middleware.perform_context`
managers nest the same way, so the first middleware wraps all the others::

    A.before_perform, B.before_perform
        enter A.perform_context, enter B.perform_context
            the job
        exit B.perform_context, exit A.perform_context
    B.after_perform, A.after_perform

Built-ins: :class:`~pubsub_jobs.middleware.logging.StructuredLogging`,
:class:`~pubsub_jobs.middleware.prometheus.PrometheusMetrics` (extra ``prometheus``) and
:class:`~pubsub_jobs.middleware.opentelemetry.OpenTelemetry` (extra ``opentelemetry``).
Operators name middleware in the settings (``PUBSUB_JOBS_MIDDLEWARE``) or on the command line
(``pubsub-jobs worker --middleware PATH``); :func:`load_middleware` imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import TYPE_CHECKING

from pubsub_jobs.errors import ConfigurationError

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome
    from pubsub_jobs.settings import Settings

__all__ = ["BUILTIN", "Middleware", "MiddlewareChain", "import_middleware", "load_middleware"]

#: Short names for the built-in middleware, accepted wherever a path is.
BUILTIN = {
    "logging": "pubsub_jobs.middleware.logging:StructuredLogging",
    "prometheus": "pubsub_jobs.middleware.prometheus:PrometheusMetrics",
    "opentelemetry": "pubsub_jobs.middleware.opentelemetry:OpenTelemetry",
}


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


def import_middleware(path: str) -> Middleware:
    """The middleware named by ``path``: ``package.module:Name`` or ``package.module.Name``
    (a :class:`Middleware` subclass, instantiated with no arguments, or an instance), or a
    short name of :data:`BUILTIN`.

    Paths come from the operator (settings, command line), never from a message.
    """
    target = BUILTIN.get(path, path)
    module_name, colon, attr = target.partition(":")
    if not colon:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"middleware {path!r}: expected an import path such as "
            f"'myapp.middleware:AuditLog' or one of {', '.join(BUILTIN)}"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import middleware {path!r}: {exc}") from exc
    obj: object = module
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise ConfigurationError(
            f"cannot import middleware {path!r}: module {module_name!r} has no {attr!r}"
        ) from None
    if isinstance(obj, Middleware):
        return obj
    if isinstance(obj, type) and issubclass(obj, Middleware):
        try:
            return obj()
        except TypeError as exc:
            raise ConfigurationError(
                f"middleware {path!r} must be constructible without arguments: {exc}"
            ) from exc
    raise ConfigurationError(f"middleware {path!r} is {obj!r}, not a Middleware subclass")


def load_middleware(settings: Settings | None = None) -> list[Middleware]:
    """The middleware named in the settings (``PUBSUB_JOBS_MIDDLEWARE``), in order."""
    if settings is None:
        from pubsub_jobs.settings import get_settings

        settings = get_settings()
    return [import_middleware(path) for path in settings.middleware]
