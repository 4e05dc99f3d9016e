"""Periodic jobs: cron expressions, the schedules declared in code, and running them.

- :mod:`~pubsub_jobs.cron.expression`: five-field cron expressions in a time zone, daylight
  saving included.
- :mod:`~pubsub_jobs.cron.schedules`: the declarations (``@job(cron=...)``,
  ``pubsub_jobs.schedule(...)``) and the job id of a scheduled delivery.
- :mod:`~pubsub_jobs.cron.terraform`: the schedules as the Terraform module's variable.
- :mod:`~pubsub_jobs.cron.listing`: each schedule with its next runs (``pubsub-jobs cron
  list``).
- :mod:`~pubsub_jobs.cron.local`: :class:`LocalScheduler`, which publishes the schedules on
  the emulator (``pubsub-jobs cron run``).
- :mod:`~pubsub_jobs.cron.sync`: the schedules as Cloud Scheduler jobs, through its API
  (:func:`sync_schedules`, ``pubsub-jobs cron sync``).

The first three belong to the core layer (the core's ``job`` and ``perform`` use the
declarations; admin's ``terraform_vars`` uses the variable); the other three run them. On
Google Cloud, Cloud Scheduler publishes each schedule's message (set up by Terraform, or by
:func:`sync_schedules`); on the emulator, :class:`LocalScheduler` does. Every name below
loads on first use: the core imports its modules of this package, which runs this file, and
must not load what the scheduler and the sync need.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pubsub_jobs.cron.listing import ScheduleRow, format_rows, schedule_rows
    from pubsub_jobs.cron.local import CronState, Firing, LocalScheduler, default_state_path
    from pubsub_jobs.cron.schedules import Schedule, schedules_for
    from pubsub_jobs.cron.sync import (
        Change,
        SyncPlan,
        apply_sync,
        plan_sync,
        scheduler_client,
        scheduler_job_id,
        sync_schedules,
    )

__all__ = [
    "Change",
    "CronState",
    "Firing",
    "LocalScheduler",
    "Schedule",
    "ScheduleRow",
    "SyncPlan",
    "apply_sync",
    "default_state_path",
    "format_rows",
    "plan_sync",
    "schedule_rows",
    "scheduler_client",
    "scheduler_job_id",
    "schedules_for",
    "sync_schedules",
]

_LISTING = ("ScheduleRow", "format_rows", "schedule_rows")
_LOCAL = ("CronState", "Firing", "LocalScheduler", "default_state_path")
_SCHEDULES = ("Schedule", "schedules_for")


def __getattr__(name: str) -> Any:
    if name in _SCHEDULES:
        from pubsub_jobs.cron import schedules

        return getattr(schedules, name)
    if name in _LISTING:
        from pubsub_jobs.cron import listing

        return getattr(listing, name)
    if name in _LOCAL:
        from pubsub_jobs.cron import local

        return getattr(local, name)
    if name in __all__:
        from pubsub_jobs.cron import sync

        return getattr(sync, name)
    raise AttributeError(f"module 'pubsub_jobs.cron' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
