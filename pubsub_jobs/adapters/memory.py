"""Adapters for tests that need no emulator: in-memory queues, or running jobs at once.

Both encode every job to the wire format and decode it back before running it, with the
same :class:`~pubsub_jobs.perform.Performer` as the worker, so a test sees the same
validation, retries and dead-lettering as production.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pubsub_jobs.adapters.base import Adapter, result_for
from pubsub_jobs.errors import JobFailed
from pubsub_jobs.message import EnqueuedJob, JobMessage, utcnow
from pubsub_jobs.middleware import Middleware, MiddlewareChain
from pubsub_jobs.outcome import Action, Outcome, dead_letter_attributes, rescheduled
from pubsub_jobs.perform import Performer
from pubsub_jobs.registry import Registry
from pubsub_jobs.settings import Settings


@dataclass
class StoredMessage:
    """A message as Pub/Sub would hold it."""

    data: bytes
    attributes: dict[str, str]
    delivery_attempt: int = 0
    message_id: str = ""

    @property
    def job(self) -> JobMessage:
        return JobMessage.decode(self.data, self.attributes)


@dataclass
class RunSummary:
    """What :meth:`InMemoryAdapter.run` did."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    #: Stretches of iterating jobs that checkpointed and continued.
    checkpointed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


class InMemoryAdapter(Adapter):
    """Keeps published jobs in memory; :meth:`run` performs them like a burst worker.

    ``max_delivery_attempts`` of the queue apply as on Pub/Sub: a failing job is redelivered
    until its attempts run out, then lands in :attr:`dead` with the dead-letter attributes.
    Delayed jobs wait in :attr:`scheduled` until due (``run(include_delayed=True)`` runs them
    at once).
    """

    supports_delay = True
    supports_bulk = True

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        *,
        middleware: Sequence[Middleware] = (),
    ) -> None:
        super().__init__(middleware)
        self._registry = registry
        self._settings = settings
        self._lock = threading.RLock()
        self._counter = 0
        self.queues: dict[str, deque[StoredMessage]] = defaultdict(deque)
        self.dead: dict[str, list[StoredMessage]] = defaultdict(list)
        self.scheduled: list[StoredMessage] = []
        self._performer: Performer | None = None

    @property
    def performer(self) -> Performer:
        if self._performer is None:
            self._performer = Performer(self._registry, self._settings,
                                        MiddlewareChain(self.middleware.middleware))
        return self._performer

    def _store(self, message: JobMessage) -> StoredMessage:
        data, attributes = message.encode()
        with self._lock:
            self._counter += 1
            return StoredMessage(data, attributes, message_id=str(self._counter))

    def publish(self, message: JobMessage) -> EnqueuedJob:
        stored = self._store(message)
        with self._lock:
            self.queues[message.queue].append(stored)
        return result_for(message, stored.message_id)

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        stored = self._store(message)
        with self._lock:
            self.scheduled.append(stored)
        return result_for(message, stored.message_id)

    def jobs(self, queue: str | None = None) -> list[JobMessage]:
        """The jobs waiting (in one queue, or all), decoded."""
        with self._lock:
            names = [queue] if queue else list(self.queues)
            return [m.job for name in names for m in self.queues.get(name, ())]

    def publish_raw(self, queue: str, data: bytes, attributes: dict[str, str]) -> None:
        """Put a message as it is on a queue (to test malformed input)."""
        with self._lock:
            self._counter += 1
            self.queues[queue].append(StoredMessage(data, dict(attributes),
                                                    message_id=str(self._counter)))

    def run(
        self, queue: str | None = None, *, include_delayed: bool = False, max_jobs: int = 10_000
    ) -> RunSummary:
        """Perform waiting jobs until the queues are empty (or ``max_jobs`` deliveries)."""
        summary = RunSummary()
        self._release_due(include_delayed)
        for _ in range(max_jobs):
            with self._lock:
                names = [queue] if queue else [n for n, q in self.queues.items() if q]
                name = next((n for n in names if self.queues.get(n)), None)
                if name is None and self._release_due(include_delayed):
                    continue  # rescheduled jobs that are due (or included) now
                if name is None:
                    break
                stored = self.queues[name].popleft()
            stored.delivery_attempt += 1
            outcome = self.performer.perform(
                stored.data, stored.attributes, stored.delivery_attempt,
                stored.message_id, name,
            )
            summary.outcomes.append(outcome)
            if outcome.failed:
                summary.failed += 1
            if outcome.action is Action.ACK:
                summary.succeeded += outcome.error is None
            elif outcome.action is Action.NACK:
                summary.retried += 1
                with self._lock:
                    self.queues[name].append(stored)
            elif outcome.action is Action.CONTINUE and outcome.continuation is not None:
                summary.checkpointed += 1
                self.publish(replace(outcome.continuation, queue=name))
            elif outcome.action is Action.RESCHEDULE:
                summary.retried += 1
                self.schedule(rescheduled(replace(stored.job, queue=name), outcome,
                                          stored.message_id))
            else:
                summary.dead_lettered += 1
                attributes = dead_letter_attributes(
                    stored.attributes, outcome, outcome.attempt or stored.delivery_attempt
                )
                with self._lock:
                    self.dead[name].append(StoredMessage(stored.data, attributes,
                                                         stored.delivery_attempt,
                                                         stored.message_id))
        return summary

    def _release_due(self, include_delayed: bool) -> bool:
        """Move scheduled jobs that are due (all, with ``include_delayed``) to their queues."""
        now = utcnow()
        released = False
        with self._lock:
            keep = []
            for stored in self.scheduled:
                job = stored.job
                if include_delayed or (job.scheduled_at is not None and job.scheduled_at <= now):
                    self.queues[job.queue].append(stored)
                    released = True
                else:
                    keep.append(stored)
            self.scheduled = keep
        return released

    def clear(self) -> None:
        with self._lock:
            self.queues.clear()
            self.dead.clear()
            self.scheduled.clear()

    def close(self) -> None:
        if self._performer is not None:
            self._performer.close()
            self._performer = None


class ImmediateAdapter(Adapter):
    """Performs each job at once, in the caller's thread, delayed ones too.

    With ``raise_errors`` (the default) a job that would be retried or dead-lettered raises
    :class:`JobFailed` from ``enqueue``, chained to the job's exception.
    """

    supports_delay = True

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        *,
        middleware: Sequence[Middleware] = (),
        raise_errors: bool = True,
    ) -> None:
        super().__init__(middleware)
        self.raise_errors = raise_errors
        self.performer = Performer(registry, settings, MiddlewareChain(middleware))
        self.outcomes: list[Outcome] = []

    def publish(self, message: JobMessage) -> EnqueuedJob:
        data, attributes = message.encode()
        attempt = 1
        outcome = self.performer.perform(data, attributes, attempt, None, message.queue)
        self.outcomes.append(outcome)
        if self.raise_errors and outcome.action is not Action.ACK:
            raise JobFailed(
                f"job {message.job_name} {message.job_id} failed: {outcome.reason.value}",
                outcome,
            ) from outcome.error
        return result_for(message, None)

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        return self.publish(message)

    def close(self) -> None:
        self.performer.close()
