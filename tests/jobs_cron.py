"""Jobs and schedules of the cron tests, in a registry of their own: the default registry
(what other tests and `terraform-vars` read) never sees them."""

from __future__ import annotations

import threading
from datetime import datetime

from pubsub_jobs import Registry, current_job, job, schedule

REGISTRY = Registry()
#: (job, job_id, schedule, slot, arguments) of every run.
RAN: list[tuple[str, str, str | None, datetime | None, object]] = []
_lock = threading.Lock()


def _record(name: str, value: object = None) -> None:
    ctx = current_job()
    with _lock:
        RAN.append((name, ctx.job_id, ctx.schedule, ctx.slot, value))


@job(queue="cron", cron="* * * * *", registry=REGISTRY)
def every_minute() -> None:
    _record("every_minute")


@job(queue="cron", cron="30 2 * * *", timezone="Europe/Berlin", registry=REGISTRY)
def nightly() -> None:
    _record("nightly")


@job(queue="cron", registry=REGISTRY)
def report(kind: str, *, limit: int = 10) -> None:
    _record("report", (kind, limit))


QUARTERLY = schedule(report, "*/15 * * * *", name="report-quarterly", args=["sales"],
                     kwargs={"limit": 5}, timezone="Europe/Berlin", registry=REGISTRY)
