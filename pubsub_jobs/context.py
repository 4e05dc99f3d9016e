"""What a running job can know about itself: :func:`current_job`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from pubsub_jobs._errors import JobError


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext:
    """The job being performed: its id, name, queue and attempt (1 for the first run)."""

    job_id: str
    job_name: str
    queue: str
    attempt: int
    max_attempts: int
    enqueued_at: datetime
    scheduled_at: datetime | None = None
    message_id: str | None = None
    #: For a periodic job: the schedule's name, and the slot (the cron time, in UTC) this
    #: run is for; every firing of one slot has the same slot and ``job_id``.
    schedule: str | None = None
    slot: datetime | None = None
    #: For an iterating job: how many continuations came before this stretch (0 at first);
    #: ``attempt`` counts the failures of this stretch only.
    iteration: int = 0
    #: The message's attributes beyond the wire format's own (e.g. ``traceparent``).
    attributes: Mapping[str, str] = field(default_factory=dict, compare=False)


#: The running job's context, or (on the worker's hot path, where most jobs never ask) a
#: function that builds it on first use: see :func:`_current_context`.
_current: ContextVar[JobContext | Callable[[], JobContext] | None] = ContextVar(
    "pubsub_jobs_current_job", default=None
)


def _current_context() -> JobContext | None:
    """The running job's context, built now if only its builder was set; None outside a job."""
    ctx = _current.get()
    if ctx is None or isinstance(ctx, JobContext):
        return ctx
    built = ctx()
    _current.set(built)  # the performer resets the variable when the job ends
    return built


def current_job() -> JobContext:
    """The context of the job running in this thread or task; an error outside a job."""
    ctx = _current_context()
    if ctx is None:
        raise JobError("current_job() is only available while a worker performs a job")
    return ctx
