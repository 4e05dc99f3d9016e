"""The in-memory adapter, for tests that need no emulator: queues in memory, run on demand
(:mod:`~pubsub_jobs.adapters.immediate` runs each job at once instead).

It encodes every job to the wire format and decodes it back before running it, with the
same :class:`~pubsub_jobs.perform.Performer` as the worker, so a test sees the same
validation, retries and dead-lettering as production. Dead jobs are the dead set's own
:class:`~pubsub_jobs.dead.job.DeadJob`, as the command line and the dashboard show them.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from pubsub_jobs.adapter import Adapter, duplicate_of, result_for
from pubsub_jobs.adapters._held import RateClock, TaskNames
from pubsub_jobs.dead.job import DeadJob
from pubsub_jobs.delivery import Delivery, DeliveryStats, settle
from pubsub_jobs.errors import ConfigurationError, DeadJobNotFound
from pubsub_jobs.jobs import Registry
from pubsub_jobs.message import EnqueuedJob, JobMessage, utcnow
from pubsub_jobs.middleware import Middleware, MiddlewareChain
from pubsub_jobs.outcome import Outcome
from pubsub_jobs.perform import Performer
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)

_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass
class StoredMessage:
    """A message as Pub/Sub (or, for a delayed job, Cloud Tasks) would hold it.

    ``due`` is when a delayed job is released to its queue, on the adapter's clock
    (:attr:`InMemoryAdapter.now`); None for a message already in a queue.
    """

    data: bytes
    attributes: dict[str, str]
    delivery_attempt: int = 0
    message_id: str = ""
    due: datetime | None = None
    ordering_key: str | None = None

    @property
    def job(self) -> JobMessage:
        job = JobMessage.decode(self.data, self.attributes)
        return job if self.ordering_key is None else replace(job, ordering_key=self.ordering_key)


@dataclass
class RunSummary:
    """What :meth:`InMemoryAdapter.run` did."""

    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    #: Stretches of iterating jobs that checkpointed and continued.
    checkpointed: int = 0
    #: Delayed jobs still held for later when the run ended (see ``delayed_jobs()``).
    delayed: int = 0
    outcomes: list[Outcome] = field(default_factory=list)


class InMemoryAdapter(Adapter):
    """Keeps published jobs in memory; :meth:`run` performs them like a burst worker.

    ``max_delivery_attempts`` of the queue apply as on Pub/Sub: a failing job is redelivered
    until its attempts run out, then lands in :attr:`dead` (queue name to a list of
    :class:`~pubsub_jobs.dead.job.DeadJob`, oldest first; :meth:`dead_jobs` lists them,
    :meth:`retry_dead` puts them back).

    Delayed jobs (``using(delay=...)``/``using(run_at=...)``, long-wait retries) wait in
    :attr:`scheduled` until due on the adapter's clock, :attr:`now`: the real time plus
    however far :meth:`advance` moved it. ``run(include_delayed=True)`` runs them at once.

    As Cloud Tasks does: a unique job (``using(unique_for=...)``) enqueued again while the
    first of its window waits, or within an hour after it left for its queue, returns
    ``duplicate=True``; a queue declared with ``rate_limit=N`` holds its jobs in
    :attr:`scheduled` and releases at most N a second of the adapter's clock (a bucket of N
    that refills at N a second; one :meth:`run` reads the clock once, when it starts).
    Jobs with an ordering key (``using(ordering_key=...)``, on a queue declared
    ``ordered=True``) run in the order they were enqueued; a failed one runs again before any
    later job of its key (at once: no wait in memory), until it succeeds or is dead-lettered,
    while the jobs of other keys go on.
    """

    supports_delay = True

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
        self._offset = timedelta(0)
        self.queues: dict[str, deque[StoredMessage]] = defaultdict(deque)
        self.dead: dict[str, list[DeadJob]] = defaultdict(list)
        self.scheduled: list[StoredMessage] = []
        self._performer: Performer | None = None
        self._names = TaskNames()
        self._rates = RateClock()

    @property
    def performer(self) -> Performer:
        if self._performer is None:
            self._performer = Performer(self._registry, self._settings,
                                        MiddlewareChain(self.middleware.middleware))
        return self._performer

    @property
    def now(self) -> datetime:
        """The adapter's clock: the real time (UTC) plus everything :meth:`advance` added."""
        return utcnow() + self._offset

    def advance(self, by: timedelta | float) -> datetime:
        """Move the adapter's clock forward by ``by`` (a timedelta, or seconds); returns the
        new :attr:`now`. Delayed jobs due by then run at the next :meth:`run`.

        Only this adapter's clock moves: a job that reads the time itself sees the real one
        (freeze or shift that with a library such as time-machine, which this clock follows).
        """
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"advance() moves the clock forward only, not by {step}")
        with self._lock:
            self._offset += step
        return self.now

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return str(self._counter)

    def _store(self, message: JobMessage) -> StoredMessage:
        data, attributes = message.encode()
        return StoredMessage(data, attributes, message_id=self._next_id(),
                             ordering_key=message.ordering_key)

    def publish(self, message: JobMessage) -> EnqueuedJob:
        if _rate_of(message.queue) is not None:
            # held, released at the queue's rate, and cancellable meanwhile
            return self._cancellable(self.schedule(message))
        stored = self._store(message)
        with self._lock:
            self.queues[message.queue].append(stored)
        return result_for(message, stored.message_id)

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        stored = self._store(message)
        # Due after the same wait on the adapter's clock as on the real one, however far
        # that clock was moved before.
        stored.due = (message.scheduled_at or utcnow()) + self._offset
        with self._lock:
            if message.unique is not None:
                now = self.now
                if self._names.taken(message.job_id, now):
                    return duplicate_of(message, "the in-memory adapter's task names")
                self._names.hold(message.job_id)
                if stored.due <= now and _rate_of(message.queue) is None:
                    stored.due = None  # dispatched at once, as Cloud Tasks would
                    self._names.leave(message.job_id, now)
                    self.queues[message.queue].append(stored)
                    return result_for(message, stored.message_id)
            self.scheduled.append(stored)
        return result_for(message, stored.message_id)

    def cancel(self, job_id: str, queue: str) -> bool:
        """Drop job ``job_id`` of ``queue`` if it still waits (it then never runs): a delayed
        or unique job not yet due on :attr:`now`, or a rate-limited queue's job its bucket has
        not released yet; True. False when it is due, released or unknown, as on Cloud Tasks."""
        now = self.now
        held_by_rate = _rate_of(queue) is not None
        with self._lock:
            for stored in self.scheduled:
                waits = held_by_rate or (stored.due is not None and stored.due > now)
                if waits and (
                        stored.attributes.get("job_id") == job_id
                        and stored.attributes.get("queue_name") == queue):
                    self.scheduled.remove(stored)
                    log.info("cancelled job %s of queue %r (it was delayed until %s)",
                             job_id, queue, stored.due)
                    return True
        log.info("job %s of queue %r was not cancelled: no delayed job of that id waits (it "
                 "is due, or ran, or was never enqueued delayed)", job_id, queue)
        return False

    def jobs(self, queue: str | None = None) -> list[JobMessage]:
        """The jobs waiting to run (in one queue, or all), decoded; not the delayed ones."""
        with self._lock:
            names = [queue] if queue else list(self.queues)
            return [m.job for name in names for m in self.queues.get(name, ())]

    def delayed_jobs(self, queue: str | None = None) -> list[JobMessage]:
        """The delayed jobs not yet due (in one queue, or all), decoded, soonest first; a
        job's ``scheduled_at`` is when it is due on the real clock."""
        with self._lock:
            held = sorted(self.scheduled, key=lambda m: m.due or self.now)
        jobs = [m.job for m in held]
        return [j for j in jobs if queue is None or j.queue == queue]

    def dead_jobs(
        self, queue: str | None = None, *, job_name: str | None = None, reason: str | None = None
    ) -> list[DeadJob]:
        """The dead jobs (of one queue, or all), oldest first, as ``pubsub-jobs dead list``
        shows them; ``job_name``/``reason`` narrow the list."""
        with self._lock:
            names = [queue] if queue else list(self.dead)
            found = [j for name in names for j in self.dead.get(name, ())
                     if j.matches(job_name=job_name, reason=reason)]
        # Each queue's list is in dead-letter order already: a stable sort on the time alone
        # keeps it where times tie.
        return sorted(found, key=lambda j: j.dead_lettered_at or _EPOCH)

    def retry_dead(
        self,
        queue: str,
        job_ids: Iterable[str] = (),
        *,
        every: bool = False,
        job_name: str | None = None,
        reason: str | None = None,
    ) -> list[str]:
        """Put dead jobs back on their queue, as ``pubsub-jobs dead retry`` does: the original
        data and attributes (same ``job_id``, attempts counted afresh) plus ``retried_from``,
        ``retried_at`` and ``retried_count``. Returns the ids retried.

        Select by id (job id or message id; an unknown one raises
        :class:`~pubsub_jobs.errors.DeadJobNotFound` and retries nothing) or ``every=True``;
        ``job_name``/``reason`` narrow either.
        """
        ids = set(job_ids)
        if ids and every:
            raise ConfigurationError("retry_dead: give job ids or every=True, not both")
        if not (ids or every or job_name or reason):
            raise ConfigurationError(
                "retry_dead: say which dead jobs: job ids, every=True, job_name= or reason="
            )
        with self._lock:
            dead = self.dead.get(queue, [])
            missing = sorted(i for i in ids if not any(i in (j.job_id, j.message_id)
                                                       for j in dead))
            if missing:
                raise DeadJobNotFound(f"no dead job {', '.join(map(repr, missing))} in queue "
                                      f"{queue!r}")
            chosen = [j for j in dead if j.matches(job_name=job_name, reason=reason)
                      and (not ids or not ids.isdisjoint((j.job_id, j.message_id)))]
            for copy in chosen:
                dead.remove(copy)
                self.queues[queue].append(StoredMessage(copy.data, copy.retry_attributes(),
                                                        message_id=self._next_id()))
        return [j.id for j in chosen]

    def publish_raw(self, queue: str, data: bytes, attributes: dict[str, str]) -> None:
        """Put a message as it is on a queue (to test malformed input)."""
        with self._lock:
            self.queues[queue].append(StoredMessage(data, dict(attributes),
                                                    message_id=self._next_id()))

    def run(
        self, queue: str | None = None, *, include_delayed: bool = False, max_jobs: int = 10_000
    ) -> RunSummary:
        """Perform the waiting jobs, and delayed jobs as they fall due on :attr:`now`, until
        none is left to run (or after ``max_jobs`` deliveries); failed jobs are retried in the
        same run. ``include_delayed=True`` runs every delayed job as if it were due,
        rescheduled ones too.
        """
        summary = RunSummary()
        stats = DeliveryStats()  # counted as the worker counts, read into the summary
        started = self.now  # rate-limited queues' buckets read the clock once a run
        self._release_due(include_delayed, started)
        for _ in range(max_jobs):
            with self._lock:
                names = [queue] if queue else [n for n, q in self.queues.items() if q]
                name = next((n for n in names if self.queues.get(n)), None)
                if name is None and self._release_due(include_delayed, started):
                    continue  # rescheduled jobs that are due (or included) now
                if name is None:
                    break
                stored = self.queues[name].popleft()
            stored.delivery_attempt += 1
            delivery = Delivery(stored.data, stored.attributes, stored.message_id,
                                stored.delivery_attempt, name)
            if stored.ordering_key is not None:
                delivery.ordering_key = stored.ordering_key
            outcome = self.performer.perform(delivery)
            done = settle(delivery, outcome, self)
            stats.count_outcome(outcome, done)
            summary.outcomes.append(outcome)
            if not done:  # redelivered, as Pub/Sub would after a nack
                with self._lock:
                    _requeue(self.queues[name], stored)
        with self._lock:
            summary.delayed = len(self.scheduled)
        counts = stats.counts
        summary.succeeded, summary.failed = counts["succeeded"], counts["failed"]
        summary.retried, summary.dead_lettered = counts["retried"], counts["dead_lettered"]
        summary.checkpointed = counts["checkpointed"]
        return summary

    def store_dead_letter(self, queue: str, data: bytes, attributes: dict[str, str]) -> None:
        """Keep the dead-letter copy the worker would publish, read as the dead set reads it
        (part of :class:`~pubsub_jobs.delivery.DeliveryStore`)."""
        copy = DeadJob.from_fields(queue, message_id=self._next_id(), data=data,
                                   attributes=attributes, publish_time=utcnow())
        with self._lock:
            self.dead[queue].append(copy)

    def store_scheduled(self, message: JobMessage) -> None:
        self.schedule(message)

    def store_published(self, message: JobMessage) -> None:
        self.publish(message)

    def _release_due(self, include_delayed: bool, started: datetime) -> bool:
        """Move delayed jobs that are due (all, with ``include_delayed``) to their queues; a
        rate-limited queue's as its bucket allows at ``started``."""
        now = self.now
        released = False
        with self._lock:
            keep = []
            for stored in self.scheduled:
                if include_delayed or stored.due is None or stored.due <= now:
                    queue = stored.job.queue
                    rate = _rate_of(queue)
                    if rate is not None and not self._rates.take(queue, rate, started):
                        keep.append(stored)
                        continue
                    stored.due = None
                    self.queues[queue].append(stored)
                    self._names.leave(stored.attributes.get("job_id", ""), now)
                    released = True
                else:
                    keep.append(stored)
            self.scheduled = keep
        return released

    def clear(self) -> None:
        """Forget every job: waiting, delayed and dead (the clock stays where it is)."""
        with self._lock:
            self.queues.clear()
            self.dead.clear()
            self.scheduled.clear()
            self._names.clear()

    def close(self) -> None:
        if self._performer is not None:
            self._performer.close()
            self._performer = None


def _requeue(waiting: deque[StoredMessage], stored: StoredMessage) -> None:
    """Put a failed message back at the end; for one of an ordering key, the key's later
    messages move behind it (they must not run before it), while other keys go first."""
    key = stored.ordering_key
    if key is None:
        waiting.append(stored)
        return
    behind = [m for m in waiting if m.ordering_key == key]
    if behind:
        kept = [m for m in waiting if m.ordering_key != key]
        waiting.clear()
        waiting.extend(kept)
    waiting.append(stored)
    waiting.extend(behind)


def _rate_of(queue: str) -> float | None:
    """The ``rate_limit`` ``queue`` is declared with, or None."""
    declared = declared_queue(queue)
    return None if declared is None else declared.rate_limit
