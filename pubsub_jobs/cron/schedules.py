"""Periodic jobs: schedules declared in code, validated when declared.

``@job(cron="0 2 * * *", timezone="Europe/Berlin")`` schedules a job without arguments;
``schedule(job, "*/15 * * * *", name=..., args=[...], kwargs={...})`` one with arguments.
Each schedule is a fixed message, the one Cloud Scheduler publishes to the job's queue on
every slot (the cron's times, see :mod:`pubsub_jobs.cron.expression` for daylight saving):
the job's data, and the attributes ``job_name``, ``queue_name``, ``wire_version`` and
``schedule``.

Cloud Scheduler cannot vary a message, so a scheduled message carries no ``job_id`` nor
``enqueued_at``: the worker derives the id from the schedule and the slot at or before the
message's publish time, ``<schedule>@<slot in RFC 3339>`` (:func:`scheduled_delivery`), so
every firing of one slot, a duplicate too, has the same id.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pubsub_jobs.cron.expression import CronExpression
from pubsub_jobs.errors import InvalidArguments, InvalidSchedule, JobDefinitionError
from pubsub_jobs.message import (
    WIRE_VERSION,
    JobMessage,
    check_limits,
    format_time,
    parse_time,
    utcnow,
)

if TYPE_CHECKING:
    from pubsub_jobs._codec import ArgumentCodec

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "UTC"
#: The attribute naming the schedule a message was published for.
SCHEDULE_ATTRIBUTE = "schedule"
#: What a scheduled message must carry (``job_id`` and ``enqueued_at`` are derived).
SCHEDULED_REQUIRED_ATTRIBUTES = ("job_name", "queue_name", "wire_version", SCHEDULE_ATTRIBUTE)
_NAME = re.compile(r"[^\s@]{1,400}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Schedule:
    """One periodic job: what Cloud Scheduler publishes, and when."""

    name: str
    job_name: str
    queue: str
    cron: str
    timezone: str
    #: The arguments, encoded as they travel (JSON-ready).
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    expression: CronExpression = field(repr=False, compare=False)
    zone: ZoneInfo = field(repr=False, compare=False)

    def __hash__(self) -> int:  # names are unique; args and kwargs are not hashable
        return hash(self.name)

    def data(self) -> bytes:
        """The message data: ``{"args": [...], "kwargs": {...}}`` as UTF-8 JSON."""
        return JobMessage(self.job_name, self.queue, self.args, self.kwargs).encode_data()

    def attributes(self) -> dict[str, str]:
        """The fixed attributes of every message of this schedule."""
        return {
            "job_name": self.job_name,
            "queue_name": self.queue,
            "wire_version": WIRE_VERSION,
            SCHEDULE_ATTRIBUTE: self.name,
        }

    def next_run(self, after: datetime | None = None) -> datetime:
        """The first slot strictly after ``after`` (default: now), in UTC."""
        return self.expression.next_after(after or utcnow(), self.zone)

    def next_runs(self, after: datetime | None = None, count: int = 5) -> list[datetime]:
        runs: list[datetime] = []
        moment = after or utcnow()
        for _ in range(count):
            moment = self.next_run(moment)
            runs.append(moment)
        return runs

    def slot_at(self, moment: datetime) -> datetime:
        """The slot a firing at ``moment`` belongs to: the latest at or before it, in UTC."""
        return self.expression.last_at_or_before(moment, self.zone)

    def job_id(self, slot: datetime) -> str:
        """``<schedule>@<slot in RFC 3339>``, e.g. ``nightly@2026-01-15T01:00:00Z``."""
        return f"{self.name}@{format_time(slot)}"


class SchedulableJob(Protocol):
    """What a schedule reads of a job (a :class:`~pubsub_jobs.jobs.Job` is one): declared
    here, as the jobs import this module to declare ``@job(cron=...)``."""

    @property
    def name(self) -> str: ...

    @property
    def queue(self) -> str: ...

    @property
    def codec(self) -> ArgumentCodec: ...


class ScheduleRegistry:
    """Schedules by name; the schedules of a job registry (:func:`schedules_for`)."""

    def __init__(self) -> None:
        self._schedules: dict[str, Schedule] = {}
        self._lock = threading.Lock()

    def add(self, schedule: Schedule) -> None:
        """Add a schedule; another one under a taken name is refused (the same one declared
        again, by a module imported twice, is not)."""
        with self._lock:
            existing = self._schedules.get(schedule.name)
            if existing is not None and existing != schedule:
                raise InvalidSchedule(
                    f"schedule {schedule.name!r} is declared twice: for job "
                    f"{existing.job_name!r} ({existing.cron}, {existing.timezone}) and for job "
                    f"{schedule.job_name!r} ({schedule.cron}, {schedule.timezone}); give one "
                    "of them another name (schedule(..., name=...))"
                )
            self._schedules[schedule.name] = schedule

    def remove(self, name: str) -> None:
        with self._lock:
            self._schedules.pop(name, None)

    def get(self, name: str) -> Schedule | None:
        return self._schedules.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._schedules

    def __iter__(self) -> Iterator[Schedule]:
        return iter(sorted(self._schedules.values(), key=lambda s: s.name))

    def __len__(self) -> int:
        return len(self._schedules)


class JobRegistry(Protocol):
    """A job :class:`~pubsub_jobs.jobs.Registry`, as far as schedules go: it holds the
    schedules of its jobs."""

    @property
    def schedules(self) -> ScheduleRegistry: ...


#: The default registry's schedules: ``pubsub_jobs.jobs.default_registry`` holds these.
_default_schedules = ScheduleRegistry()


def schedules_for(registry: JobRegistry | None = None) -> ScheduleRegistry:
    """The schedules declared for the jobs of ``registry`` (default: the default registry)."""
    return _default_schedules if registry is None else registry.schedules


def schedule(
    job: SchedulableJob,
    cron: str,
    *,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    queue: str | None = None,
    registry: JobRegistry | None = None,
) -> Schedule:
    """Run ``job`` with these arguments on every slot of ``cron`` (five fields) in ``timezone``.

    ``name`` (default: the job's name) identifies the schedule: in job ids, in Cloud
    Scheduler, in ``pubsub-jobs cron list``; two schedules cannot share one. The arguments
    are validated and encoded now, so a schedule that cannot run fails at import, not at
    2 a.m. ``queue`` defaults to the job's; ``registry`` is the job's registry, if not the
    default. Raises :class:`~pubsub_jobs.errors.InvalidSchedule` naming the schedule.
    """
    declared = build_schedule(job, cron, name=name, args=args, kwargs=kwargs,
                              timezone=timezone, queue=queue)
    schedules_for(registry).add(declared)
    return declared


def build_schedule(
    job: SchedulableJob,
    cron: str,
    *,
    name: str | None = None,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    queue: str | None = None,
) -> Schedule:
    """A validated :class:`Schedule`, not yet registered (:func:`schedule` registers it)."""
    if not hasattr(job, "codec") or not hasattr(job, "name"):
        raise InvalidSchedule(f"schedule() takes a job (a function decorated with @job), "
                              f"not {job!r}")
    name = job.name if name is None else name
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidSchedule(f"schedule name {name!r} is not 1 to 400 characters without "
                              "spaces or '@'")
    try:
        expression = CronExpression.parse(cron)
    except ValueError as exc:
        raise InvalidSchedule(f"schedule {name!r}: cron {cron!r} is invalid: {exc}") from None
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSchedule(
            f"schedule {name!r}: unknown time zone {timezone!r}; give an IANA name such as "
            "'UTC' or 'Europe/Berlin'"
        ) from None
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise InvalidSchedule(f"schedule {name!r}: args is a list of positional arguments")
    try:
        enc_args, enc_kwargs = job.codec.encode(list(args), dict(kwargs or {}))
    except (InvalidArguments, JobDefinitionError) as exc:
        how = ("" if args or kwargs else
               "; a job that takes arguments is scheduled with pubsub_jobs.schedule(job, "
               "cron, args=[...], kwargs={...})")
        raise InvalidSchedule(
            f"schedule {name!r}: the arguments do not fit job {job.name!r}: {exc}{how}"
        ) from None
    declared = Schedule(
        name=name, job_name=job.name, queue=queue or job.queue, cron=expression.text,
        timezone=timezone, args=enc_args, kwargs=enc_kwargs, expression=expression, zone=zone,
    )
    check_limits(declared.data(), declared.attributes(), what=f"schedule {name!r}")
    return declared


@dataclass(frozen=True, slots=True)
class ScheduledDelivery:
    """A scheduled message as the worker reads it: the schedule, the slot it runs for, and
    its attributes with ``job_id`` and ``enqueued_at`` filled in where they were missing."""

    schedule: str
    slot: datetime
    attributes: Mapping[str, str]


def scheduled_delivery(
    attributes: Mapping[str, str],
    publish_time: datetime | None,
    schedules: ScheduleRegistry | None = None,
) -> ScheduledDelivery | None:
    """Read a message's ``schedule`` attribute; None for a message of no schedule.

    The slot is the one its ``job_id`` names when that is ``<schedule>@<time>`` (a retried,
    rescheduled or caught-up copy), else the schedule's latest slot at or before
    ``publish_time`` (default: now). A schedule this worker does not know (not declared in
    its modules) gets ``publish_time`` to the minute, and a warning. The derived ``job_id``
    is ``<schedule>@<slot>``; ``enqueued_at`` is ``publish_time``.
    """
    name = attributes.get(SCHEDULE_ATTRIBUTE)
    if not name:
        return None
    published = publish_time or utcnow()
    job_id = attributes.get("job_id")
    slot = _slot_in(job_id, name) if job_id else None
    if slot is None:
        declared = (schedules if schedules is not None else schedules_for()).get(name)
        if declared is not None:
            slot = declared.slot_at(published)
        else:
            log.warning("schedule %r is not declared in this worker's modules: its slot is "
                        "taken as the publish time to the minute", name)
            slot = published.replace(second=0, microsecond=0)
    completed = dict(attributes)
    if not job_id:
        completed["job_id"] = f"{name}@{format_time(slot)}"
    if not attributes.get("enqueued_at"):
        completed["enqueued_at"] = format_time(published)
    return ScheduledDelivery(name, slot, completed)


def _slot_in(job_id: str, name: str) -> datetime | None:
    prefix = f"{name}@"
    if not job_id.startswith(prefix):
        return None
    try:
        return parse_time(job_id[len(prefix):])
    except ValueError:
        return None
