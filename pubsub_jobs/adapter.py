"""The adapter interface: how an application hands jobs over to be run.

The core owns it, as ``Job.enqueue`` and ``Job.using`` call it; the adapters themselves
(Pub/Sub, in-memory, immediate) build on it in :mod:`pubsub_jobs.adapters`, which exports
it too. Capability flags say what an adapter can do, and :meth:`Adapter.validate` refuses the
rest with a sentence, as Django's ``validate_task`` does.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import ClassVar

from pubsub_jobs._hooks import Middleware, MiddlewareChain
from pubsub_jobs.errors import BulkEnqueueError, ConfigurationError
from pubsub_jobs.message import EnqueuedJob, JobMessage, utcnow
from pubsub_jobs.queues import check_ordered
from pubsub_jobs.unique import with_unique_id

log = logging.getLogger(__name__)


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

    def validate(self, *, delayed: bool = False, unique: bool = False) -> None:
        """Refuse, before anything is encoded or published, an enqueue this adapter cannot
        do: a job held until later (``delayed``), or a unique job (``unique``), without
        ``supports_delay``."""
        if delayed and not self.supports_delay:
            raise ConfigurationError(self._cannot_delay())
        if unique and not self.supports_delay:
            raise ConfigurationError(
                f"{type(self).__name__} cannot hold unique jobs (supports_delay is False: "
                "uniqueness is a Cloud Tasks task name): enqueue without unique_for=, or use "
                "the Pub/Sub adapter with Cloud Tasks configured "
                "(PUBSUB_JOBS_CLOUD_TASKS_LOCATION)")

    @property
    def now(self) -> datetime:
        """The time of an enqueue, which places a unique job in its window: the real time
        (the in-memory adapter has a clock of its own)."""
        return utcnow()

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        """Hold the job until ``message.scheduled_at``, then publish it."""
        raise ConfigurationError(self._cannot_delay())

    def _cannot_delay(self) -> str:
        return (
            f"{type(self).__name__} cannot hold delayed jobs (supports_delay is False); "
            "enqueue without delay= or run_at=, or use the Pub/Sub adapter with Cloud Tasks "
            "configured (PUBSUB_JOBS_CLOUD_TASKS_LOCATION)"
        )

    def cancel(self, job_id: str, queue: str) -> bool:
        """Delete job ``job_id`` of ``queue`` while it still waits to be published (delayed,
        unique or rate-limited): True when it was cancelled and will not run, False when it
        had already left (it will run, or ran) or no such job waits, the reason logged.

        This base holds no waiting jobs: it raises
        :class:`~pubsub_jobs.errors.ConfigurationError` saying so. The Pub/Sub adapter deletes
        the job's Cloud Tasks task; the in-memory adapter drops a delayed job not yet due.
        """
        raise ConfigurationError(
            f"{type(self).__name__} holds no waiting jobs, so job {job_id!r} of queue "
            f"{queue!r} cannot be cancelled: only a job still waiting in Cloud Tasks (the "
            "Pub/Sub adapter) or among the in-memory adapter's delayed jobs can be"
        )

    def _cancellable(self, result: EnqueuedJob) -> EnqueuedJob:
        """``result`` with this adapter's :meth:`cancel` attached, when it has one of its own:
        :meth:`EnqueuedJob.cancel` goes to the adapter that holds the job."""
        if result._canceller is not None or type(self).cancel is Adapter.cancel:
            return result
        return replace(result, _canceller=_Canceller(self))

    def publish_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Publish many jobs now; the default publishes them one by one."""
        return [self.publish(message) for message in messages]

    def schedule_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Schedule many delayed or unique jobs; the default schedules them one by one."""
        return [self.schedule(message) for message in messages]

    def enqueue(self, message: JobMessage) -> EnqueuedJob:
        """Run enqueue middleware, then publish now or schedule for later."""
        if message.unique is not None:
            message = with_unique_id(message, self.now)
        if message.ordering_key is not None:
            _check_ordered(message)
        chain = self.middleware
        if chain:
            message = chain.before_enqueue(message)
        try:
            if is_delayed(message) or message.unique is not None:
                result = self._cancellable(self.schedule(message))
            else:
                result = self.publish(message)
                if result.message_id is None:  # held back (a rate-limited or unique job)
                    result = self._cancellable(result)
        except BaseException as exc:
            if chain:
                chain.after_enqueue(message, None, exc)
            raise
        if chain:
            chain.after_enqueue(message, result, None)
        return result

    def enqueue_many(self, messages: Sequence[JobMessage]) -> list[EnqueuedJob]:
        """Enqueue many jobs: those due now with :meth:`publish_many`, delayed and unique
        ones with :meth:`schedule_many` (both batch on the Pub/Sub adapter)."""
        if any(m.unique is not None for m in messages):
            now = self.now
            messages = [with_unique_id(m, now) for m in messages]
        for message in messages:  # all refused before any is sent
            if message.ordering_key is not None:
                _check_ordered(message)
        chain = self.middleware
        if chain:
            messages = [chain.before_enqueue(m) for m in messages]
        held = [m.unique is not None or is_delayed(m) for m in messages]
        later = [m for m, h in zip(messages, held, strict=True) if h]
        now_ = [m for m, h in zip(messages, held, strict=True) if not h] if later else messages
        results: list[EnqueuedJob] = []
        errors: dict[str, BaseException] = {}
        try:
            try:
                published = self.publish_many(now_) if now_ else []
            except BulkEnqueueError as exc:
                if later:  # the held ones are sent all the same, their failures added
                    try:
                        exc.enqueued += self.schedule_many(later)
                    except BulkEnqueueError as more:
                        exc.enqueued += more.enqueued
                        exc.failed += more.failed
                raise
            scheduled = self._schedule_rest(later, published) if later else []
            if not later:
                results = published
            elif not now_:
                results = scheduled
            else:  # in the order given
                sent, kept = iter(published), iter(scheduled)
                results = [next(kept) if h else next(sent) for h in held]
            # held back (delayed, unique; rate-limited ones publish without a message id):
            # cancellable, as in enqueue
            results = [self._cancellable(r) if h or r.message_id is None else r
                       for r, h in zip(results, held, strict=True)]
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

    def _schedule_rest(self, later: Sequence[JobMessage], published: list[EnqueuedJob]
                       ) -> list[EnqueuedJob]:
        """:meth:`schedule_many`; a :class:`BulkEnqueueError` also lists ``published``."""
        try:
            return self.schedule_many(later)
        except BulkEnqueueError as exc:
            exc.enqueued = published + exc.enqueued
            raise

    def close(self) -> None:
        """Release clients; the adapter may be used again afterwards (they are rebuilt)."""
        return None


class _Canceller:
    """An adapter's :meth:`Adapter.cancel`, as an :class:`EnqueuedJob` keeps it: a deep copy
    of the result (``dataclasses.asdict``) shares it rather than copying the adapter, and a
    pickled result leaves it behind (a process that loads one cancels by id instead)."""

    __slots__ = ("adapter",)

    def __init__(self, adapter: Adapter | None) -> None:
        self.adapter = adapter

    def __call__(self, job_id: str, queue: str) -> bool:
        if self.adapter is None:
            raise ConfigurationError(
                f"this EnqueuedJob of job {job_id!r} was unpickled, without the adapter that "
                f"enqueued it: cancel it with pubsub_jobs.cancel({job_id!r}, queue={queue!r})"
            )
        return self.adapter.cancel(job_id, queue)

    def __deepcopy__(self, memo: dict[int, object]) -> _Canceller:
        return self

    def __reduce__(self) -> tuple[type[_Canceller], tuple[None]]:
        return (_Canceller, (None,))


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


def duplicate_of(message: JobMessage, where: str) -> EnqueuedJob:
    """What enqueueing a unique job again within its window returns: nothing was enqueued,
    ``job_id`` is the first job's. Logged at info, naming ``where`` it was refused."""
    log.info("job %s %s is a duplicate within its unique window (%s): not enqueued again",
             message.job_name, message.job_id, where)
    return replace(result_for(message, None), duplicate=True)
