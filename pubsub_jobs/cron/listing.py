"""What ``pubsub-jobs cron list`` shows: each schedule with its next runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pubsub_jobs.cron.schedules import Schedule
from pubsub_jobs.message import format_time, utcnow


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    """One schedule and its next runs (UTC)."""

    schedule: Schedule
    next_runs: list[datetime]

    def to_json(self) -> dict[str, Any]:
        s = self.schedule
        return {
            "name": s.name, "job": s.job_name, "queue": s.queue, "cron": s.cron,
            "time_zone": s.timezone, "args": s.args, "kwargs": s.kwargs,
            "next_runs": [format_time(run) for run in self.next_runs],
        }


def schedule_rows(
    schedules: Iterable[Schedule], *, now: datetime | None = None, count: int = 3
) -> list[ScheduleRow]:
    """Each schedule with its next ``count`` runs after ``now`` (default: now)."""
    now = now or utcnow()
    return [ScheduleRow(s, s.next_runs(now, count)) for s in sorted(schedules,
                                                                    key=lambda s: s.name)]


def local_time(schedule: Schedule, moment: datetime) -> str:
    """``2026-03-29 03:00 CEST``: a run in the schedule's own time zone."""
    return moment.astimezone(schedule.zone).strftime("%Y-%m-%d %H:%M %Z")


def format_rows(rows: Iterable[ScheduleRow]) -> str:
    """A table for a person: name, job, queue, cron, time zone, next runs in that zone."""
    table = [("SCHEDULE", "JOB", "QUEUE", "CRON", "TIME ZONE", "NEXT RUNS")]
    for row in rows:
        s = row.schedule
        runs = ", ".join(local_time(s, run) for run in row.next_runs)
        table.append((s.name, s.job_name, s.queue, s.cron, s.timezone, runs))
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=False))
        + "  " + line[-1]
        for line in table
    ) + "\n"
