"""Periodic jobs in operation: listing schedules, the local scheduler, Cloud Scheduler sync.

Schedules are declared in the core (:mod:`pubsub_jobs.schedules`: ``@job(cron=...)`` and
``pubsub_jobs.schedule(...)``); this package runs them. On Google Cloud, Cloud Scheduler
publishes each schedule's message (set up by Terraform, or by :func:`sync_schedules`, which
``pubsub-jobs cron sync`` calls); on the emulator, :class:`LocalScheduler` does
(``pubsub-jobs cron run``).
"""

from pubsub_jobs.cron.listing import ScheduleRow, format_rows, schedule_rows
from pubsub_jobs.cron.local import CronState, Firing, LocalScheduler, default_state_path
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
    "ScheduleRow",
    "SyncPlan",
    "apply_sync",
    "default_state_path",
    "format_rows",
    "plan_sync",
    "schedule_rows",
    "scheduler_client",
    "scheduler_job_id",
    "sync_schedules",
]
