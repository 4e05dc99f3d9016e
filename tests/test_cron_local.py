"""The local scheduler (``pubsub-jobs cron run``): once per slot, no catch-up unless asked;
against the emulator, the worker runs each firing under ``<schedule>@<slot>``."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.cron import CronState, LocalScheduler
from pubsub_jobs.cron.schedules import schedules_for
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.message import format_time, utcnow
from tests import jobs_cron

ROOT = Path(__file__).resolve().parent.parent
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


@pytest.fixture
def ran():
    jobs_cron.RAN.clear()
    yield jobs_cron.RAN
    jobs_cron.RAN.clear()


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


def wait_past_a_minute_boundary(margin: float = 2.0) -> None:
    """Keep a test's slot from changing between two of its steps."""
    seconds = utcnow().second + utcnow().microsecond / 1e6
    if seconds > 60 - margin:
        time.sleep(60 - seconds + 0.1)


@pytest.mark.emulator
def test_on_the_emulator_the_worker_runs_each_slot_under_its_derived_id(
    bootstrap_queues, drain_queues, pubsub_jobs_settings, dead_letters, ran, tmp_path
):
    bootstrap_queues("cron")
    wait_past_a_minute_boundary()
    slot = EVERY_MINUTE.slot_at(utcnow())
    scheduler = LocalScheduler([EVERY_MINUTE], settings=pubsub_jobs_settings,
                               state=CronState(tmp_path / "state.json"))
    try:
        scheduler.start(slot - timedelta(seconds=1))  # as if running since just before it
        fired = scheduler.tick()  # the real clock: this slot is due
        assert scheduler.tick() == []  # and published once
    finally:
        scheduler.close()
    assert [f.slot for f in fired] == [slot]
    drain_queues("cron", registry=jobs_cron.REGISTRY, idle=1.0)
    job_id = f"tests.jobs_cron.every_minute@{format_time(slot)}"
    assert ran == [("every_minute", job_id, "tests.jobs_cron.every_minute", slot, None)]
    assert dead_letters("cron") == []


@pytest.mark.emulator
def test_on_the_emulator_caught_up_slots_keep_their_ids(
    bootstrap_queues, drain_queues, pubsub_jobs_settings, ran, tmp_path
):
    bootstrap_queues("cron")
    now = utcnow()
    latest = QUARTERLY.slot_at(now)
    state = CronState(tmp_path / "state.json")
    state.record(QUARTERLY.name, latest - timedelta(minutes=45))
    scheduler = LocalScheduler([QUARTERLY], settings=pubsub_jobs_settings, state=state,
                               catch_up=True)
    try:
        fired = scheduler.start(now)
    finally:
        scheduler.close()
    slots = [latest - timedelta(minutes=m) for m in (30, 15, 0)]
    assert [f.slot for f in fired] == slots
    drain_queues("cron", registry=jobs_cron.REGISTRY, idle=1.0)
    assert sorted(ran, key=lambda r: r[3] or now) == [
        ("report", f"report-quarterly@{format_time(s)}", "report-quarterly", s, ("sales", 5))
        for s in slots]


USER_MODULE = """
from pubsub_jobs import job

@job(queue="cron", cron="* * * * *")
def tick() -> None: ...
"""


@pytest.mark.emulator
def test_cron_run_command_catches_up_and_stops_on_sigterm(
    bootstrap_queues, pubsub_jobs_settings, tmp_path
):
    bootstrap_queues("cron")
    (tmp_path / "periodic.py").write_text(textwrap.dedent(USER_MODULE))
    state = tmp_path / "state.json"
    latest = EVERY_MINUTE.slot_at(utcnow())
    CronState(state).record("periodic.tick", latest - timedelta(minutes=2))
    env = {
        **os.environ, "PYTHONPATH": str(ROOT),
        "PUBSUB_EMULATOR_HOST": pubsub_jobs_settings.pubsub_emulator_host or "",
        "PUBSUB_JOBS_PROJECT_ID": pubsub_jobs_settings.require_project(),
        "PUBSUB_JOBS_PREFIX": pubsub_jobs_settings.prefix,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "cron", "run", "periodic", "--catch-up",
         "--state", str(state)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if json.loads(state.read_text())["slots"]["periodic.tick"] >= format_time(latest):
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output
    assert "local scheduler started" in output and "local scheduler stopped" in output

    subscriber = subscriber_client(pubsub_jobs_settings)
    ids: list[str] = []
    try:
        deadline = time.monotonic() + 15
        while len(ids) < 2 and time.monotonic() < deadline:
            response = subscriber.pull(
                subscription=pubsub_jobs_settings.subscription_path("cron"), max_messages=10,
                return_immediately=True, timeout=10,
            )
            ids += [m.message.attributes["job_id"] for m in response.received_messages
                    if "job_id" in m.message.attributes]  # (a live slot, if one came, has none)
    finally:
        subscriber.close()
    assert sorted(ids)[:2] == [f"periodic.tick@{format_time(latest - timedelta(minutes=m))}"
                               for m in (1, 0)]
