"""Terraform variables from the queue definitions that ``bootstrap`` uses.

``pubsub-jobs terraform-vars --queue default --queue mailers`` writes
``pubsub-jobs.auto.tfvars.json``, which Terraform reads by itself, so the module in
``terraform/`` creates on Google Cloud exactly the topology that ``bootstrap`` creates on
the emulator: the same prefix, queue names and :class:`~pubsub_jobs.settings.QueueOptions`
(merged with the queues declared in code), and a declared queue's ``ordered``,
``exactly_once`` and ``rate_limit`` (the module makes its ``<prefix>Q-rate`` Cloud Tasks
queue from it).
Durations are written in seconds, the form the module (and ``PUBSUB_JOBS_QUEUES``) takes.
``pubsub-jobs terraform-vars MODULE ...`` writes the modules' schedules too, in the rows
:func:`pubsub_jobs.cron.terraform.schedule_variables` makes of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from pathlib import Path
from typing import Any

from pubsub_jobs.cron.schedules import Schedule
from pubsub_jobs.cron.terraform import schedule_variables
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import QueueOptions, Settings, get_settings

#: Terraform loads ``*.auto.tfvars.json`` files of the working directory automatically.
DEFAULT_TFVARS_PATH = "pubsub-jobs.auto.tfvars.json"


def _seconds(value: timedelta) -> int | float:
    """A duration as a number of seconds, an integer when it is whole."""
    seconds = value.total_seconds()
    return int(seconds) if seconds.is_integer() else seconds


def queue_variables(options: QueueOptions) -> dict[str, int | float]:
    """One queue's options as the module's ``queues`` variable takes them."""
    return {
        "max_delivery_attempts": options.max_delivery_attempts,
        "min_retry_backoff": _seconds(options.min_retry_backoff),
        "max_retry_backoff": _seconds(options.max_retry_backoff),
        "ack_deadline_seconds": options.ack_deadline_seconds,
        "message_retention": _seconds(options.message_retention),
        "dead_letter_retention": _seconds(options.dead_letter_retention),
    }


def declared_variables(queue: str) -> dict[str, bool | float]:
    """``ordered`` and ``exactly_once`` of a queue declared in code (:func:`pubsub_jobs.queue`),
    which the module sets on its worker subscription, and its ``rate_limit`` when it has one
    (the module's ``<prefix>Q-rate`` Cloud Tasks queue); nothing for a queue not declared."""
    declared = declared_queue(queue)
    if declared is None:
        return {}
    found: dict[str, bool | float] = {"ordered": declared.ordered,
                                      "exactly_once": declared.exactly_once}
    if declared.rate_limit is not None:
        rate = declared.rate_limit
        found["rate_limit"] = int(rate) if float(rate).is_integer() else rate
    return found


def terraform_vars(queues: Iterable[str], settings: Settings | None = None) -> dict[str, Any]:
    """The module's variables for ``queues``: every option of every queue spelled out.

    The project is left out on purpose: it belongs to the deployment (one per
    environment), not to the queue definitions.
    """
    settings = settings or get_settings()
    names = list(dict.fromkeys(queues))
    if not names:
        raise ConfigurationError("name at least one queue (--queue Q)")
    variables: dict[str, Any] = {
        "prefix": settings.prefix,
        "queues": {name: {**queue_variables(settings.queue_options(name)),
                          **declared_variables(name)} for name in names},
        "cloud_tasks_queue": settings.cloud_tasks_queue,
    }
    if settings.cloud_tasks_location:
        variables["cloud_tasks_location"] = settings.cloud_tasks_location
    schedules = _schedules.get()
    if schedules is not None:  # `terraform-vars MODULE ...`: see writing_schedules
        variables["schedules"] = schedule_variables(schedules, names)
    return variables


#: The schedules :func:`terraform_vars` writes, while :func:`writing_schedules` is active.
_schedules: ContextVar[tuple[Schedule, ...] | None] = ContextVar(
    "pubsub_jobs_terraform_schedules", default=None
)


@contextmanager
def writing_schedules(schedules: Iterable[Schedule]) -> Iterator[None]:
    """Within, :func:`terraform_vars` also writes the module's ``schedules`` variable
    (``pubsub-jobs terraform-vars MODULE ...`` uses it for the modules' schedules)."""
    token = _schedules.set(tuple(schedules))
    try:
        yield
    finally:
        _schedules.reset(token)


def render_terraform_vars(queues: Iterable[str], settings: Settings | None = None) -> str:
    """:func:`terraform_vars` as the text of a ``.tfvars.json`` file."""
    return json.dumps(terraform_vars(queues, settings), indent=2) + "\n"


def write_terraform_vars(
    path: str | Path, queues: Iterable[str], settings: Settings | None = None
) -> Path:
    """Write :func:`terraform_vars` to ``path`` (a ``*.auto.tfvars.json`` name is loaded by
    Terraform without ``-var-file``); returns the path."""
    path = Path(path)
    path.write_text(render_terraform_vars(queues, settings), encoding="utf-8")
    return path
