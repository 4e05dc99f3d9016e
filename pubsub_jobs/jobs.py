"""``@job``: turn a function into a :class:`Job` that can be enqueued and performed by a
worker, and the :class:`Registry` that knows jobs by name.

A worker runs only jobs registered here, looked up by name: a message names a job, never a
module to import. Modules register their jobs when they are imported (``@job`` does it),
and the worker imports only the modules it was told to.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Generic, ParamSpec, TypeVar, overload

from pubsub_jobs._codec import ArgumentCodec
from pubsub_jobs._default_adapter import default_adapter
from pubsub_jobs._enqueue_threads import in_enqueue_thread
from pubsub_jobs.adapter import Adapter
from pubsub_jobs.cron.schedules import ScheduleRegistry, build_schedule, schedules_for
from pubsub_jobs.errors import ConfigurationError, JobDefinitionError, UnknownJob
from pubsub_jobs.iteration import DEFAULT_CHECKPOINT_EVERY, is_iterating
from pubsub_jobs.message import EnqueuedJob, JobMessage, new_job_id, utcnow
from pubsub_jobs.queues import check_ordering_key
from pubsub_jobs.unique import default_key, unique_options

P = ParamSpec("P")
R = TypeVar("R")

#: How long a failed job waits before its next attempt: a timedelta, seconds, or a function
#: of the attempt that failed (1 for the first run) returning either.
RetryWait = timedelta | float | Callable[[int], "timedelta | float"]

DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueueOptions:
    """What :meth:`Job.using` changes for the next enqueue."""

    queue: str
    delay: timedelta | None = None
    run_at: datetime | None = None
    job_id: str | None = None
    adapter: Adapter | None = None
    unique_for: float | None = None  # seconds
    unique_key: str | None = None
    #: Pub/Sub ordering key: jobs of one key on an ordered queue run one at a time, in order.
    ordering_key: str | None = None

    @property
    def delayed(self) -> bool:
        """Whether a job enqueued now would be held until later (a delay of zero or less, or
        a time in the past, publishes at once)."""
        if self.delay is not None:
            return self.delay > timedelta(0)
        return self.run_at is not None and self.run_at > utcnow()


class Job(Generic[P, R]):
    """A registered job. Call it to run it here; :meth:`enqueue` to run it on a worker."""

    def __init__(
        self,
        fn: Callable[P, R],
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        max_attempts: int | None = None,
        retry_on: tuple[type[BaseException], ...] | None = None,
        discard_on: tuple[type[BaseException], ...] = (),
        retry_wait: RetryWait | None = None,
        registry: Registry | None = None,
        cron: str | None = None,
        timezone: str | None = None,
        checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        if not callable(fn):
            raise JobDefinitionError(f"@job needs a function, not {fn!r}")
        if max_attempts is not None and max_attempts < 1:
            raise JobDefinitionError("max_attempts is at least 1")
        for group in (retry_on or (), discard_on):
            for exc_type in group:
                if not (isinstance(exc_type, type) and issubclass(exc_type, BaseException)):
                    raise JobDefinitionError(f"{exc_type!r} is not an exception class")
        if retry_wait is not None and not callable(retry_wait):
            seconds = (retry_wait.total_seconds() if isinstance(retry_wait, timedelta)
                       else retry_wait)
            if not isinstance(seconds, int | float) or seconds <= 0:
                raise JobDefinitionError(
                    f"retry_wait is a positive timedelta, seconds, or a function of the "
                    f"attempt, not {retry_wait!r}"
                )
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.queue = queue
        self.max_attempts = max_attempts
        self.retry_on = retry_on
        self.discard_on = discard_on
        self.retry_wait = retry_wait
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)
        self.is_iterating = is_iterating(fn, self.name)
        if not checkpoint_every > 0:
            raise JobDefinitionError(f"job {self.name!r}: checkpoint_every is seconds, > 0")
        self.checkpoint_every = float(checkpoint_every)
        self.codec = ArgumentCodec(fn, f"job {self.name!r}")
        self._options = EnqueueOptions(queue=queue)
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn
        planned = None
        if cron is not None:  # validated before the job is registered: all or nothing
            planned = build_schedule(self, cron, timezone=timezone or "UTC")
        elif timezone is not None:
            raise JobDefinitionError(f"job {self.name!r}: timezone= goes with cron=")
        registry = registry if registry is not None else default_registry
        registry.register(self)
        if planned is not None:
            schedules_for(registry).add(planned)

    def __repr__(self) -> str:
        return f"<Job {self.name} queue={self._options.queue!r}>"

    def retry_delay(self, attempt: int) -> timedelta | None:
        """How long to wait after failed ``attempt`` when ``retry_wait`` is set, else None."""
        wait = self.retry_wait
        if wait is None:
            return None
        if callable(wait):
            wait = wait(attempt)
        return wait if isinstance(wait, timedelta) else timedelta(seconds=wait)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the function here and now, as a plain call."""
        return self.fn(*args, **kwargs)

    def using(
        self,
        *,
        queue: str | None = None,
        delay: timedelta | float | None = None,
        run_at: datetime | None = None,
        job_id: str | None = None,
        adapter: Adapter | None = None,
        unique_for: timedelta | float | None = None,
        unique_key: str | None = None,
        ordering_key: str | None = None,
    ) -> Job[P, R]:
        """A copy of this job that enqueues with other options.

        ``delay`` (a timedelta or seconds) or ``run_at`` (an aware datetime) hold the job in
        Cloud Tasks until it is due; ``job_id`` makes a retried enqueue idempotent for
        delayed jobs; ``adapter`` sends it somewhere else than the default adapter.
        ``unique_for`` (1 s to 30 days) enqueues at most one job per key and epoch-aligned
        window through Cloud Tasks; the key is ``unique_key``, else the job name and its
        arguments; a second enqueue returns ``duplicate=True`` (see :mod:`pubsub_jobs.unique`).
        ``ordering_key`` (at most 1,024 bytes) publishes with that Pub/Sub ordering key: on
        a queue declared ``queue(Q, ordered=True)`` the jobs of one key run one at a time, in
        the order they were enqueued (a delayed one takes its place when it is published);
        the enqueue refuses it for a queue not declared ordered.
        An adapter that cannot do what the options ask refuses with a
        :class:`~pubsub_jobs.errors.ConfigurationError`: here when it is named, else when
        the default adapter is first used by an enqueue.
        """
        if delay is not None and run_at is not None:
            raise ConfigurationError("give delay or run_at, not both")
        if run_at is not None and run_at.tzinfo is None:
            raise ConfigurationError("run_at must be an aware datetime (with a time zone)")
        if isinstance(delay, int | float):
            delay = timedelta(seconds=delay)
        changes: dict[str, Any] = {"delay": delay, "run_at": run_at}
        changes.update(unique_options(unique_for, unique_key, job_id or self._options.job_id))
        if queue is not None:
            changes["queue"] = queue
        if job_id is not None:
            changes["job_id"] = job_id
        if adapter is not None:
            changes["adapter"] = adapter
        if ordering_key is not None:
            if self.is_iterating:
                raise ConfigurationError(
                    f"job {self.name!r} is an iterating job: its checkpoints publish a "
                    "continuation, which would run after the jobs enqueued behind it with "
                    "the same ordering key, so it cannot have one; give the key to the jobs "
                    "it enqueues instead, or make it a plain job")
            changes["ordering_key"] = check_ordering_key(ordering_key)
        clone = copy.copy(self)
        clone._options = options = replace(self._options, **changes)
        if options.adapter is not None:
            options.adapter.validate(delayed=options.delayed, unique=bool(options.unique_for))
        return clone

    def message(self, *args: P.args, **kwargs: P.kwargs) -> JobMessage:
        """Validate and encode a call into the message :meth:`enqueue` would publish."""
        return self._message(args, kwargs, utcnow())

    def _message(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], now: datetime
    ) -> JobMessage:
        enc_args, enc_kwargs = self.codec.encode(args, kwargs)
        options = self._options
        scheduled_at = None
        if options.run_at is not None:
            scheduled_at = options.run_at
        elif options.delay is not None:
            scheduled_at = now + options.delay
        key = None
        if options.unique_for is not None:
            key = (options.unique_key or default_key(self.name, enc_args, enc_kwargs),
                   options.unique_for)
        return JobMessage(
            job_name=self.name,
            queue=options.queue,
            args=enc_args,
            kwargs=enc_kwargs,
            job_id=options.job_id or new_job_id(),
            enqueued_at=now,
            scheduled_at=scheduled_at,
            unique=key,
            ordering_key=options.ordering_key,
        )

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> EnqueuedJob:
        """Publish the job; returns once Pub/Sub (or Cloud Tasks, when delayed) confirmed it."""
        return self._adapter().enqueue(self.message(*args, **kwargs))

    def enqueue_many(
        self, calls: Iterable[tuple[Any, ...] | Mapping[str, Any]]
    ) -> list[EnqueuedJob]:
        """Enqueue many calls at once: a tuple is positional arguments, a dict keywords.

        Messages are published in batches; this returns when Pub/Sub confirmed all of them,
        or raises :class:`~pubsub_jobs.errors.BulkEnqueueError` listing those it did not.
        """
        return self._adapter().enqueue_many(self._messages(calls))

    def _messages(self, calls: Iterable[tuple[Any, ...] | Mapping[str, Any]]
                  ) -> list[JobMessage]:
        now = utcnow()  # one enqueued_at for them all: formatted once, not per job
        encode = self._message
        return [
            encode((), call, now) if isinstance(call, Mapping) else encode(call, {}, now)
            for call in calls
        ]

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> EnqueuedJob:
        """:meth:`enqueue` for ``async def`` code (a FastAPI endpoint): the arguments are
        checked here, at once; the publish and its confirmation wait in a thread of
        pubsub-jobs' own, so the event loop goes on serving meanwhile."""
        message = self.message(*args, **kwargs)
        return await in_enqueue_thread(self._adapter().enqueue, message)

    async def aenqueue_many(
        self, calls: Iterable[tuple[Any, ...] | Mapping[str, Any]]
    ) -> list[EnqueuedJob]:
        """:meth:`enqueue_many` without blocking the event loop (arguments checked at once)."""
        messages = self._messages(calls)
        return await in_enqueue_thread(self._adapter().enqueue_many, messages)

    def _adapter(self) -> Adapter:
        options = self._options
        if options.adapter is not None:
            return options.adapter  # validated by using()
        adapter = default_adapter()
        adapter.validate(delayed=options.delayed, unique=bool(options.unique_for))
        return adapter


@overload
def job(fn: Callable[P, R], /) -> Job[P, R]: ...


@overload
def job(
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    max_attempts: int | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    discard_on: tuple[type[BaseException], ...] = (),
    retry_wait: RetryWait | None = None,
    registry: Registry | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY,
) -> Callable[[Callable[P, R]], Job[P, R]]: ...


def job(
    fn: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    queue: str = DEFAULT_QUEUE,
    max_attempts: int | None = None,
    retry_on: tuple[type[BaseException], ...] | None = None,
    discard_on: tuple[type[BaseException], ...] = (),
    retry_wait: RetryWait | None = None,
    registry: Registry | None = None,
    cron: str | None = None,
    timezone: str | None = None,
    checkpoint_every: float = DEFAULT_CHECKPOINT_EVERY,
) -> Job[P, R] | Callable[[Callable[P, R]], Job[P, R]]:
    """Declare a job: ``@job`` or ``@job(queue="mailers", max_attempts=3, ...)``.

    ``max_attempts`` defaults to the queue's ``max_delivery_attempts``; an exception in
    ``discard_on`` is logged and dropped; when ``retry_on`` is given, any other exception
    dead-letters the job at once (reason ``not_retryable``). ``retry_wait`` (a timedelta,
    seconds, or a function of the failed attempt) makes a retry wait that long in Cloud Tasks
    instead of Pub/Sub's backoff (at most 600 s); retries still count toward ``max_attempts``.
    ``cron`` (five fields) with ``timezone`` (default UTC) runs a job without arguments
    periodically under a schedule named like the job; see :func:`pubsub_jobs.schedule`.
    A generator function with a keyword-only ``cursor`` is an iterating job: it yields the
    cursor after each item, and the worker checkpoints every ``checkpoint_every`` seconds
    and on a stop, continuing it after the last cursor.
    """

    def decorate(func: Callable[P, R]) -> Job[P, R]:
        return Job(
            func,
            name=name,
            queue=queue,
            max_attempts=max_attempts,
            retry_on=retry_on,
            discard_on=discard_on,
            retry_wait=retry_wait,
            registry=registry,
            cron=cron,
            timezone=timezone,
            checkpoint_every=checkpoint_every,
        )

    return decorate(fn) if fn is not None else decorate


def enqueue_many(
    messages: Iterable[JobMessage], adapter: Adapter | None = None
) -> list[EnqueuedJob]:
    """Enqueue messages of any jobs and queues (built with :meth:`Job.message`) in batches."""
    if adapter is None:
        adapter = default_adapter()
    return adapter.enqueue_many(list(messages))


class Registry:
    """Jobs by name. One default registry serves ``@job``; tests may build their own."""

    def __init__(self, schedules: ScheduleRegistry | None = None) -> None:
        self._jobs: dict[str, Job[Any, Any]] = {}
        self._lock = threading.Lock()
        #: The schedules declared for these jobs (what :func:`schedules_for` gives).
        self.schedules = schedules if schedules is not None else ScheduleRegistry()
        #: The job registered under a name, or None: the worker's lookup, the dict's own
        #: ``get`` (no Python call on the hot path; :meth:`get` raises instead).
        self.find: Callable[[str], Job[Any, Any] | None] = self._jobs.get

    def register(self, job: Job[Any, Any]) -> None:
        """Add a job; a second, different function under a taken name is refused."""
        with self._lock:
            existing = self._jobs.get(job.name)
            if existing is not None and not _same_definition(existing, job):
                raise JobDefinitionError(
                    f"job name {job.name!r} is already registered for "
                    f"{existing.fn.__module__}.{existing.fn.__qualname__}; "
                    "give one of them @job(name=...)"
                )
            self._jobs[job.name] = job

    def unregister(self, name: str) -> None:
        with self._lock:
            self._jobs.pop(name, None)

    def get(self, name: str) -> Job[Any, Any]:
        try:
            return self._jobs[name]
        except KeyError:
            raise UnknownJob(f"no job is registered under the name {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._jobs

    def __iter__(self) -> Iterator[Job[Any, Any]]:
        return iter(list(self._jobs.values()))

    def __len__(self) -> int:
        return len(self._jobs)

    def queues(self) -> set[str]:
        """The queues the registered jobs go to by default."""
        return {job.queue for job in self}


def _same_definition(a: Job[Any, Any], b: Job[Any, Any]) -> bool:
    """A module imported twice (or reloaded) defines "the same" job again; that is allowed."""
    return (a.fn.__module__, a.fn.__qualname__) == (b.fn.__module__, b.fn.__qualname__)


#: The registry of ``@job``, with the schedules of ``schedules_for()`` (the default ones).
default_registry = Registry(schedules_for())
