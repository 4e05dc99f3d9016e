"""The local scheduler (``pubsub-jobs cron run``): once per slot, no catch-up unless asked,
publishing into a recording stand-in (against the emulator: tests/emulator/test_cron_local.py)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest

from pubsub_jobs.cron import CronState, LocalScheduler
from pubsub_jobs.cron.schedules import schedules_for
from pubsub_jobs.errors import ConfigurationError
from tests import jobs_cron

EVERY_MINUTE = schedules_for(jobs_cron.REGISTRY).get("tests.jobs_cron.every_minute")
QUARTERLY = jobs_cron.QUARTERLY


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class FakePubSub:
    """Records what the scheduler publishes; ``fail`` makes the next publishes raise."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.fail = 0

    def __call__(self, queue: str, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("Pub/Sub is away")
        self.published.append((queue, data, dict(attributes)))
        return str(len(self.published))

    def ids(self) -> list[str]:
        return [attributes.get("job_id", "-") for _, _, attributes in self.published]


def test_once_per_slot_with_exactly_what_cloud_scheduler_publishes():
    pubsub = FakePubSub()
    scheduler = LocalScheduler([EVERY_MINUTE], publish=pubsub)
    assert scheduler.start(utc("2026-01-15T10:00:30")) == []
    assert scheduler.tick(utc("2026-01-15T10:00:59.9")) == []
    assert scheduler.next_due(utc("2026-01-15T10:00:59.9")) == utc("2026-01-15T10:01:00")
    [fired] = scheduler.tick(utc("2026-01-15T10:01:00.1"))
    assert fired.slot == utc("2026-01-15T10:01:00") and fired.message_id == "1"
    assert scheduler.tick(utc("2026-01-15T10:01:00.2")) == []
    assert scheduler.tick(utc("2026-01-15T10:01:59")) == []
    assert [f.slot for f in scheduler.tick(utc("2026-01-15T10:02:03"))] == [
        utc("2026-01-15T10:02:00")]
    assert pubsub.published == [
        ("cron", b'{"args":[],"kwargs":{}}', EVERY_MINUTE.attributes()),
        ("cron", b'{"args":[],"kwargs":{}}', EVERY_MINUTE.attributes()),
    ]
    assert "job_id" not in pubsub.published[0][2]  # the worker derives it, as on Google Cloud


def test_slots_passed_while_held_up_are_skipped_for_the_latest(caplog):
    pubsub = FakePubSub()
    scheduler = LocalScheduler([EVERY_MINUTE, QUARTERLY], publish=pubsub)
    scheduler.start(utc("2026-01-15T10:00:30"))
    with caplog.at_level(logging.WARNING, "pubsub_jobs.cron"):
        fired = scheduler.tick(utc("2026-01-15T10:20:05"))
    assert [(f.schedule, f.slot) for f in fired] == [
        ("report-quarterly", utc("2026-01-15T10:15:00")),
        ("tests.jobs_cron.every_minute", utc("2026-01-15T10:20:00")),
    ]
    assert "like Cloud Scheduler it runs only the latest" in caplog.text


def test_a_failed_publish_is_tried_again_within_the_slot():
    pubsub = FakePubSub()
    scheduler = LocalScheduler([EVERY_MINUTE], publish=pubsub)
    scheduler.start(utc("2026-01-15T10:00:30"))
    pubsub.fail = 1
    assert scheduler.tick(utc("2026-01-15T10:01:00.1")) == []
    assert scheduler.next_due(utc("2026-01-15T10:01:00.1")) == utc("2026-01-15T10:01:05.1")
    assert [f.slot for f in scheduler.tick(utc("2026-01-15T10:01:05.1"))] == [
        utc("2026-01-15T10:01:00")]
    assert scheduler.tick(utc("2026-01-15T10:01:10")) == []
    assert len(pubsub.published) == 1


def test_no_catch_up_of_what_was_missed_while_stopped_unless_asked(tmp_path):
    state_path = tmp_path / "state.json"
    pubsub = FakePubSub()
    first = LocalScheduler([QUARTERLY], publish=pubsub, state=CronState(state_path))
    first.start(utc("2026-01-15T09:50:00"))
    first.tick(utc("2026-01-15T10:00:01"))  # publishes 10:00, then the scheduler stops
    assert json.loads(state_path.read_text()) == {
        "slots": {"report-quarterly": "2026-01-15T10:00:00Z"}}

    # Started again at 11:05: 10:15, 10:30, 10:45 and 11:00 were missed.
    later = LocalScheduler([QUARTERLY], publish=pubsub, state=CronState(state_path))
    assert later.start(utc("2026-01-15T11:05:00")) == []
    assert later.tick(utc("2026-01-15T11:10:00")) == []
    assert len(pubsub.published) == 1

    catching_up = LocalScheduler([QUARTERLY], publish=pubsub, state=CronState(state_path),
                                 catch_up=True)
    fired = catching_up.start(utc("2026-01-15T11:05:00"))
    assert [(f.slot, f.caught_up) for f in fired] == [
        (utc(f"2026-01-15T{t}:00"), True) for t in ("10:15", "10:30", "10:45", "11:00")]
    # Published long after their slots, they say which slot they are.
    assert pubsub.ids()[1:] == [f"report-quarterly@2026-01-15T{t}:00Z"
                                for t in ("10:15", "10:30", "10:45", "11:00")]
    assert catching_up.tick(utc("2026-01-15T11:10:00")) == []  # 11:00 is not published twice
    assert [f.slot for f in catching_up.tick(utc("2026-01-15T11:15:00"))] == [
        utc("2026-01-15T11:15:00")]


def test_catch_up_is_bounded(tmp_path, caplog):
    state = CronState(tmp_path / "state.json")
    state.record(EVERY_MINUTE.name, utc("2026-01-15T09:00:00"))
    pubsub = FakePubSub()
    scheduler = LocalScheduler([EVERY_MINUTE], publish=pubsub, state=state, catch_up=True,
                               catch_up_limit=3)
    with caplog.at_level(logging.WARNING, "pubsub_jobs.cron"):
        fired = scheduler.start(utc("2026-01-15T10:00:30"))
    assert [f.slot for f in fired] == [utc("2026-01-15T09:58:00"), utc("2026-01-15T09:59:00"),
                                       utc("2026-01-15T10:00:00")]
    assert "catching up the latest 3 only" in caplog.text


def test_catching_up_needs_a_state_file():
    with pytest.raises(ConfigurationError, match="state file"):
        LocalScheduler([EVERY_MINUTE], publish=FakePubSub(), catch_up=True)


