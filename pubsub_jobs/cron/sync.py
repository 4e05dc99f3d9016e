"""``pubsub-jobs cron sync``: the schedules as Cloud Scheduler jobs, through its API.

For teams without Terraform. Each schedule is one Cloud Scheduler job in
``projects/P/locations/L``, named by :func:`scheduler_job_id` (``<prefix><schedule>``), whose
Pub/Sub target publishes the schedule's message (data and attributes) to its queue's topic:
the same job, name, description and retry settings as the Terraform module's
``google_cloud_scheduler_job``, so either can take over from the other.
:func:`plan_sync` compares what the code declares with what exists: create what is missing,
update what differs (only the fields we set), leave alone what matches, and, with ``prune``
only, delete our jobs (under our prefix, publishing a ``schedule`` attribute) that no schedule
declares any more. A second run right after the first changes nothing. A job paused in the
console stays paused.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from pubsub_jobs.cron.schedules import SCHEDULE_ATTRIBUTE, Schedule
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.settings import Settings, get_settings

#: How often Cloud Scheduler retries a publish that failed, and how far apart (the Terraform
#: module's defaults).
RETRY_COUNT = 3
MIN_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(seconds=60)
#: The fields :func:`plan_sync` sets, so the only ones an update changes.
UPDATE_MASK = ("description", "schedule", "time_zone", "pubsub_target", "retry_config")
_REFUSED = re.compile(r"[^A-Za-z0-9_-]")
_UTC_NAMES = {"", "UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/Universal", "Universal", "Zulu",
              "Etc/Zulu"}

Action = Literal["create", "update", "keep", "delete", "stale"]


def scheduler_job_id(schedule_name: str, prefix: str) -> str:
    """The Cloud Scheduler job id of a schedule, as the Terraform module names it:
    ``<prefix><name>`` with every character Cloud Scheduler refuses (all but letters, digits,
    ``-`` and ``_``) turned into ``-`` (``myapp.jobs.nightly`` -> ``jobs-myapp-jobs-nightly``).
    Two schedules that meet this way are refused by :func:`plan_sync`."""
    return _REFUSED.sub("-", f"{prefix}{schedule_name}")


@dataclass(frozen=True, slots=True)
class Change:
    """What the sync does to one Cloud Scheduler job."""

    action: Action
    name: str  # the job's resource name
    schedule: str | None = None
    differences: tuple[str, ...] = ()
    job: Any = field(default=None, repr=False)  # the scheduler_v1.Job to create or update

    def describe(self) -> str:
        short = self.name.rsplit("/", 1)[-1]
        if self.action == "create":
            return f"create  {short}  (schedule {self.schedule})"
        if self.action == "update":
            return f"update  {short}  (schedule {self.schedule}): " + "; ".join(self.differences)
        if self.action == "keep":
            return f"same    {short}  (schedule {self.schedule})"
        if self.action == "delete":
            return f"delete  {short}  (no schedule declares it any more)"
        return f"stale   {short}  (no schedule declares it any more; --prune deletes it)"


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """Every change for one location, in order: creates, updates, deletes, the rest."""

    parent: str
    changes: list[Change]

    @property
    def pending(self) -> list[Change]:
        """The changes that call the API."""
        return [c for c in self.changes if c.action in ("create", "update", "delete")]

    def describe(self) -> str:
        lines = [c.describe() for c in self.changes] or ["no schedules, no jobs of ours"]
        return "\n".join(lines) + "\n"


def scheduler_client(settings: Settings | None = None) -> Any:
    """A Cloud Scheduler client on Application Default Credentials."""
    settings = settings or get_settings()
    if settings.pubsub_emulator_host:
        raise ConfigurationError(
            "PUBSUB_EMULATOR_HOST is set, and no Cloud Scheduler emulator exists: run "
            "`pubsub-jobs cron run MODULE ...` to publish the schedules on the emulator, or "
            "unset PUBSUB_EMULATOR_HOST to sync a Google Cloud project"
        )
    return _scheduler_v1().CloudSchedulerClient()


def desired_job(schedule: Schedule, parent: str, settings: Settings) -> Any:
    """The Cloud Scheduler job of ``schedule`` under ``parent`` (``projects/P/locations/L``)."""
    scheduler_v1 = _scheduler_v1()
    return scheduler_v1.Job(
        name=f"{parent}/jobs/{scheduler_job_id(schedule.name, settings.prefix)}",
        description=f"pubsub-jobs schedule {schedule.name}"[:500],
        schedule=schedule.cron,
        time_zone=schedule.timezone,
        pubsub_target=scheduler_v1.PubsubTarget(
            topic_name=settings.topic_path(schedule.queue),
            data=schedule.data(),
            attributes=schedule.attributes(),
        ),
        retry_config=scheduler_v1.RetryConfig(
            retry_count=RETRY_COUNT, min_backoff_duration=MIN_BACKOFF,
            max_backoff_duration=MAX_BACKOFF,
        ),
    )


def plan_sync(
    schedules: Iterable[Schedule],
    client: Any,
    *,
    location: str,
    settings: Settings | None = None,
    prune: bool = False,
) -> SyncPlan:
    """Compare the schedules with the jobs in ``location``; changes nothing."""
    scheduler_v1 = _scheduler_v1()
    settings = settings or get_settings()
    parent = f"projects/{settings.require_project()}/locations/{location}"
    wanted: dict[str, tuple[str, Any]] = {}
    for schedule in schedules:
        job = desired_job(schedule, parent, settings)
        job_id = job.name.rsplit("/", 1)[-1]
        if job.name in wanted:
            raise ConfigurationError(
                f"schedules {wanted[job.name][0]!r} and {schedule.name!r} would both be the "
                f"Cloud Scheduler job {job_id!r} (characters other than letters, digits, - and "
                "_ become -): rename one"
            )
        if len(job_id) > 500:
            raise ConfigurationError(f"schedule {schedule.name!r}: its Cloud Scheduler job "
                                     f"name is over 500 characters; choose a shorter name")
        wanted[job.name] = (schedule.name, job)
    existing = {job.name: job for job in client.list_jobs(
        request=scheduler_v1.ListJobsRequest(parent=parent)
    )}
    changes = []
    for name, (schedule_name, job) in sorted(wanted.items()):
        have = existing.get(name)
        if have is None:
            changes.append(Change("create", name, schedule_name, job=job))
            continue
        diffs = _differences(job, have)
        action: Action = "update" if diffs else "keep"
        changes.append(Change(action, name, schedule_name, tuple(diffs), job=job))
    prefix = f"{parent}/jobs/{settings.prefix}"
    for name, have in sorted(existing.items()):
        if name in wanted or not name.startswith(prefix):
            continue
        if SCHEDULE_ATTRIBUTE in have.pubsub_target.attributes:  # one of ours
            changes.append(Change("delete" if prune else "stale", name))
    order = {"create": 0, "update": 1, "delete": 2, "keep": 3, "stale": 4}
    return SyncPlan(parent, sorted(changes, key=lambda c: order[c.action]))


def apply_sync(plan: SyncPlan, client: Any) -> None:
    """Send the plan's requests, one per pending change."""
    from google.protobuf import field_mask_pb2

    scheduler_v1 = _scheduler_v1()

    for change in plan.pending:
        if change.action == "create":
            client.create_job(request=scheduler_v1.CreateJobRequest(parent=plan.parent,
                                                                    job=change.job))
        elif change.action == "update":
            client.update_job(request=scheduler_v1.UpdateJobRequest(
                job=change.job, update_mask=field_mask_pb2.FieldMask(paths=list(UPDATE_MASK)),
            ))
        else:
            client.delete_job(request=scheduler_v1.DeleteJobRequest(name=change.name))


def sync_schedules(
    schedules: Iterable[Schedule],
    *,
    location: str,
    client: Any = None,
    settings: Settings | None = None,
    prune: bool = False,
    dry_run: bool = False,
) -> SyncPlan:
    """Plan, then (unless ``dry_run``) apply; returns the plan."""
    settings = settings or get_settings()
    client = client if client is not None else scheduler_client(settings)
    plan = plan_sync(schedules, client, location=location, settings=settings, prune=prune)
    if not dry_run:
        apply_sync(plan, client)
    return plan


def _scheduler_v1() -> Any:
    """``google.cloud.scheduler_v1``, imported by name: it ships type hints and
    google-cloud-pubsub does not, and once mypy sees the former it misses ``pubsub_v1`` in
    the ``google.cloud`` namespace (as ``adapters/cloud_tasks.py`` explains)."""
    try:
        return importlib.import_module("google.cloud.scheduler_v1")
    except ImportError:
        raise ConfigurationError(
            "cron sync needs the Cloud Scheduler client: pip install 'pubsub-jobs[scheduler]'"
        ) from None


def _differences(want: Any, have: Any) -> list[str]:
    diffs = []
    if want.schedule != have.schedule:
        diffs.append(f"cron {have.schedule!r} -> {want.schedule!r}")
    if want.time_zone != have.time_zone and not {want.time_zone, have.time_zone} <= _UTC_NAMES:
        diffs.append(f"time zone {have.time_zone!r} -> {want.time_zone!r}")
    w, h = want.pubsub_target, have.pubsub_target
    if w.topic_name != h.topic_name:
        diffs.append(f"topic {h.topic_name!r} -> {w.topic_name!r}")
    if w.data != h.data:
        diffs.append(f"data {_short(h.data)} -> {_short(w.data)}")
    if dict(w.attributes) != dict(h.attributes):
        diffs.append(f"attributes {dict(h.attributes)} -> {dict(w.attributes)}")
    if want.description != have.description:
        diffs.append("description")
    for name in ("retry_count", "min_backoff_duration", "max_backoff_duration"):
        wanted, found = getattr(want.retry_config, name), getattr(have.retry_config, name)
        if wanted != found:
            diffs.append(f"{name.replace('_', ' ')} {found} -> {wanted}")
    return diffs


def _short(data: bytes) -> str:
    text = data.decode("utf-8", errors="replace")
    return repr(text if len(text) <= 80 else text[:77] + "...")
