"""The adapter interface: how an application hands jobs over to be run.

The core owns it, as ``Job.enqueue`` and ``Job.using`` call it; the adapters themselves
(Pub/Sub, in-memory, immediate) build on it in :mod:`pubsub_jobs.adapters`, which exports
it too. Capability flags say what an adapter can do, and :meth:`Adapter.validate` refuses the
rest with a sentence, as Django's ``validate_task`` does.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from pubsub_jobs._hooks import Middleware, MiddlewareChain
from pubsub_jobs.errors import BulkEnqueueError, ConfigurationError
from pubsub_jobs.message import EnqueuedJob, JobMessage, utcnow
from pubsub_jobs.queues import check_ordered


class Adapter(ABC):
    """Publishes jobs. Subclasses implement :meth:`publish`, and :meth:`schedule` if they can
    (then they say so with ``supports_delay = True``).

    :meth:`enqueue` runs the enqueue middleware and sends a job that is due later to
    :meth:`schedule`, everything else to :meth:`publish`. :meth:`publish_many` publishes
    one by one unless an adapter batches (the Pub/Sub adapter does).
    """

    supports_delay: ClassVar[bool] = False
    """Can hold a job until it is due (``using(delay=...)``/``using(run_at=...)``):
    :meth:`schedule` is implemented. :meth:`validate` refuses a delay without it."""

    def __init__(self, middleware: Sequence[Middleware] = ()) -> None:
        self.middleware = MiddlewareChain(middleware)

    @abstractmethod
    def publish(self, message: JobMessage) -> EnqueuedJob:
        """Make the job available to workers now; return once that is confirmed."""

    def validate(self, *, delayed: bool = False) -> None:
        """Refuse, before anything is encoded or published, an enqueue this adapter cannot
        do: a job held until later (``delayed``) without ``supports_delay``."""
        if delayed and not self.supports_delay:
            raise ConfigurationError(self._cannot_delay())

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        """Hold the job until ``message.scheduled_at``, then publish it."""
        raise ConfigurationError(self._cannot_delay())

    def _cannot_delay(self) -> str:
        return (
            f"{type(self).__name__} cannot hold delayed jobs (supports_delay is False); "
            "enqueue without delay= or run_at=, or use the Pub/Sub adapter with Cloud Tasks "
            "configured (PUBSUB_JOBS_CLOUD_TASKS_LOCATION)"
        )

    def publish_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Publish many jobs now; the default publishes them one by one."""
        return [self.publish(message) for message in messages]

    def enqueue(self, message: JobMessage) -> EnqueuedJob:
        """Run enqueue middleware, then publish now or schedule for later."""
        if message.ordering_key is not None:
            _check_ordered(message)
        chain = self.middleware
        if chain:
            message = chain.before_enqueue(message)
        try:
            if is_delayed(message):
                result = self.schedule(message)
            else:
                result = self.publish(message)
        except BaseException as exc:
            if chain:
                chain.after_enqueue(message, None, exc)
            raise
        if chain:
            chain.after_enqueue(message, result, None)
        return result

    def enqueue_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Enqueue many jobs: those due now in batches, delayed ones one by one."""
        for message in messages:  # all refused before any is sent
            if message.ordering_key is not None:
                _check_ordered(message)
        chain = self.middleware
        if chain:
            messages = [chain.before_enqueue(m) for m in messages]
        now_ = [m for m in messages if not is_delayed(m)]
        later = [m for m in messages if is_delayed(m)]
        results: list[EnqueuedJob] = []
        errors: dict[str, BaseException] = {}
        try:
            results = self.publish_many(now_) if now_ else []
            for m in later:
                results.append(self.schedule(m))
        except BulkEnqueueError as exc:
            results = list(exc.enqueued)
            errors = {m.job_id: error for m, error in exc.failed}
            raise
        except BaseException as exc:
            done = {r.job_id for r in results}
            errors = {m.job_id: exc for m in messages if m.job_id not in done}
            raise
        finally:
            if chain:
                by_id = {r.job_id: r for r in results}
                for m in messages:
                    error = errors.get(m.job_id)
                    chain.after_enqueue(m, None if error else by_id.get(m.job_id), error)
        return results

    def close(self) -> None:
        """Release clients; the adapter may be used again afterwards (they are rebuilt)."""
        return None


def _check_ordered(message: JobMessage) -> None:
    check_ordered(message.queue, message.ordering_key, f"job {message.job_name!r}")


def is_delayed(message: JobMessage) -> bool:
    """Due in the future: a delay of zero or less, or a time in the past, publishes at once."""
    return message.scheduled_at is not None and message.scheduled_at > utcnow()


def result_for(message: JobMessage, message_id: str | None) -> EnqueuedJob:
    return EnqueuedJob(
        job_id=message.job_id,
        job_name=message.job_name,
        queue=message.queue,
        message_id=message_id,
        scheduled_at=message.scheduled_at,
    )
