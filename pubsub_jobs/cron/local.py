"""``pubsub-jobs cron run``: the local scheduler, for the emulator (no Cloud Scheduler
emulator exists).

It publishes each schedule's message as Cloud Scheduler does: the same data and attributes,
once per slot, as soon as the slot comes; the worker derives the job id from the publish
time. Like Cloud Scheduler it runs no slot it missed while it was stopped, unless asked to
(``catch_up``): it then publishes the slots missed since the last one it published (kept in a
small state file), each with its ``job_id`` (``<schedule>@<slot>``), since a publish time
long after a slot no longer tells which slot it was. While running, a slot it was held up
past (a suspended laptop) is skipped for the latest one, as Cloud Scheduler would.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.cron.schedules import Schedule
from pubsub_jobs.errors import ConfigurationError, describe
from pubsub_jobs.message import format_time, parse_time, utcnow
from pubsub_jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: ``publish(queue, data, attributes)`` puts one message on a queue's topic and returns its
#: message id once Pub/Sub confirmed it.
Publish = Callable[[str, bytes, Mapping[str, str]], str]

#: The longest the scheduler sleeps at once, so a changed system clock is noticed.
MAX_SLEEP = 30.0
#: How soon a publish that failed is tried again (within the same slot).
RETRY_AFTER = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Firing:
    """One message the scheduler published."""

    schedule: str
    slot: datetime
    message_id: str
    caught_up: bool = False


class CronState:
    """The last slot published per schedule, in a JSON file, so a later ``--catch-up`` knows
    what it missed. Without a path nothing is kept."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._slots: dict[str, str] = {}
        if path is not None and path.exists():
            try:
                loaded = json.loads(path.read_text("utf-8"))
                self._slots = {str(k): str(v) for k, v in loaded.get("slots", {}).items()}
            except (ValueError, AttributeError) as exc:
                log.warning("ignoring the unreadable cron state file %s (%s)", path, exc)

    def last(self, name: str) -> datetime | None:
        text = self._slots.get(name)
        try:
            return parse_time(text) if text else None
        except ValueError:
            return None

    def record(self, name: str, slot: datetime) -> None:
        self._slots[name] = format_time(slot)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"slots": self._slots}, indent=2), "utf-8")
        temporary.replace(self.path)


def default_state_path(settings: Settings) -> Path:
    """``~/.cache/pubsub-jobs/cron/<project>-<prefix>.json`` (``$XDG_CACHE_HOME`` honoured)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{settings.require_project()}-{settings.prefix}")
    return base / "pubsub-jobs" / "cron" / f"{key}.json"


class LocalScheduler:
    """Publishes the messages of ``schedules`` on their slots, as Cloud Scheduler would.

    :meth:`run` loops until its stop event is set; :meth:`start` and :meth:`tick` are the
    steps, with ``now`` given, so tests need no clock. ``publish`` defaults to Pub/Sub (the
    emulator when ``PUBSUB_EMULATOR_HOST`` is set) under ``settings``.
    """

    def __init__(
        self,
        schedules: Iterable[Schedule],
        *,
        settings: Settings | None = None,
        publish: Publish | None = None,
        state: CronState | None = None,
        catch_up: bool = False,
        catch_up_limit: int = 100,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.schedules = sorted(schedules, key=lambda s: s.name)
        if catch_up and (state is None or state.path is None):
            raise ConfigurationError("catching up needs a state file of the slots published")
        if catch_up_limit < 1:
            raise ConfigurationError("catch_up_limit is at least 1")
        self.settings = settings
        self.state = state or CronState(None)
        self.catch_up = catch_up
        self.catch_up_limit = catch_up_limit
        self.clock = clock
        self._adapter: PubSubAdapter | None = None
        self._publish = publish or self._publish_to_pubsub
        self._last: dict[str, datetime] = {}
        self._failed: set[str] = set()  # schedules whose due slot could not be published
        self._retry_at: datetime | None = None

    def start(self, now: datetime | None = None) -> list[Firing]:
        """Begin at ``now``: later slots will run; earlier ones only with ``catch_up``."""
        now = now or self.clock()
        fired: list[Firing] = []
        for schedule in self.schedules:
            self._last[schedule.name] = now
            if self.catch_up:
                fired += self._catch_up(schedule, now)
        return fired

    def tick(self, now: datetime | None = None) -> list[Firing]:
        """Publish every schedule whose slot has come since the last tick; once per slot."""
        now = now or self.clock()
        if not self._last:
            self.start(now)
        self._retry_at = None
        self._failed.clear()
        fired = []
        for schedule in self.schedules:
            last = self._last[schedule.name]
            slot = schedule.slot_at(now)
            if slot <= last:
                continue
            first_due = schedule.next_run(last)
            if first_due < slot:
                log.warning("schedule %s: slots from %s to before %s passed while the "
                            "scheduler was held up; like Cloud Scheduler it runs only the "
                            "latest", schedule.name, format_time(first_due), format_time(slot))
            firing = self._fire(schedule, slot)
            if firing is None:
                self._retry_at = now + RETRY_AFTER
                self._failed.add(schedule.name)
                continue
            self._last[schedule.name] = slot
            fired.append(firing)
        return fired

    def next_due(self, now: datetime | None = None) -> datetime | None:
        """When :meth:`tick` next has something to do (None without schedules)."""
        now = now or self.clock()
        # A slot that failed to publish waits for the retry, not for nothing.
        due = [s.next_run(now if s.name in self._failed else self._last.get(s.name, now))
               for s in self.schedules]
        if self._retry_at is not None:
            due.append(self._retry_at)
        return min(due) if due else None

    def run(self, stop: threading.Event) -> None:
        """Start, then tick on every slot until ``stop`` is set."""
        self.start()
        names = ", ".join(f"{s.name} ({s.cron}, {s.timezone})" for s in self.schedules)
        log.info("local scheduler started: %s", names or "no schedules")
        while not stop.is_set():
            self.tick()
            due = self.next_due()
            wait = MAX_SLEEP if due is None else (due - self.clock()).total_seconds()
            stop.wait(min(max(wait, 0.05), MAX_SLEEP))
        log.info("local scheduler stopped")

    def close(self) -> None:
        if self._adapter is not None:
            self._adapter.close()
            self._adapter = None

    def _catch_up(self, schedule: Schedule, now: datetime) -> list[Firing]:
        previous = self.state.last(schedule.name)
        if previous is None:
            return []
        missed: list[datetime] = []
        moment = now
        while True:
            slot = schedule.slot_at(moment)
            if slot <= previous:
                break
            if len(missed) == self.catch_up_limit:
                log.warning("schedule %s: more than %d slots were missed; catching up the "
                            "latest %d only", schedule.name, self.catch_up_limit,
                            self.catch_up_limit)
                break
            missed.append(slot)
            moment = slot - timedelta(microseconds=1)
        fired = []
        for slot in reversed(missed):
            firing = self._fire(schedule, slot, caught_up=True)
            if firing is None:
                break
            fired.append(firing)
        return fired

    def _fire(self, schedule: Schedule, slot: datetime, *, caught_up: bool = False
              ) -> Firing | None:
        attributes = schedule.attributes()
        if caught_up:  # published long after its slot: say which slot it is
            attributes["job_id"] = schedule.job_id(slot)
        try:
            message_id = self._publish(schedule.queue, schedule.data(), attributes)
        except Exception as exc:
            log.error("schedule %s: could not publish slot %s to queue %s (%s); is the queue "
                      "bootstrapped (`pubsub-jobs bootstrap --queue %s`)?", schedule.name,
                      format_time(slot), schedule.queue, describe(exc), schedule.queue)
            return None
        self.state.record(schedule.name, slot)
        log.info("schedule %s: published %s to queue %s (message %s)%s", schedule.name,
                 schedule.job_id(slot), schedule.queue, message_id,
                 " (catching up)" if caught_up else "")
        return Firing(schedule.name, slot, message_id, caught_up)

    def _publish_to_pubsub(self, queue: str, data: bytes, attributes: Mapping[str, str]) -> str:
        settings = self.settings or get_settings()
        if self._adapter is None:
            self._adapter = PubSubAdapter(settings)
        future = self._adapter.publish_raw(settings.topic_path(queue), data, attributes)
        return future.result(timeout=settings.publish_timeout)
