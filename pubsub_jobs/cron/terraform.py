"""The schedules as the Terraform module's ``schedules`` variable, which
:mod:`pubsub_jobs.admin.terraform_vars` writes beside the queues (``pubsub-jobs
terraform-vars MODULE ...``).

Each becomes the module's ``google_cloud_scheduler_job``: the same message Cloud Scheduler
publishes when :mod:`pubsub_jobs.cron.sync` creates the job through the API.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable
from typing import Any

from pubsub_jobs.cron.schedules import Schedule
from pubsub_jobs.errors import ConfigurationError


def schedule_variables(
    schedules: Iterable[Schedule], queues: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The module's ``schedules`` variable: by schedule name, what its Cloud Scheduler job
    publishes (``data`` in base64, as ``pubsub_target.data`` takes it) and when. Every
    schedule's queue must be among ``queues``, the queues written with it."""
    variables = {}
    for schedule in sorted(schedules, key=lambda s: s.name):
        if schedule.queue not in queues:
            raise ConfigurationError(
                f"schedule {schedule.name!r} publishes to queue {schedule.queue!r}, which "
                f"is not among the queues written: add --queue {schedule.queue}"
            )
        variables[schedule.name] = {
            "queue": schedule.queue,
            "cron": schedule.cron,
            "time_zone": schedule.timezone,
            "data": base64.b64encode(schedule.data()).decode("ascii"),
            "attributes": schedule.attributes(),
        }
    return variables
