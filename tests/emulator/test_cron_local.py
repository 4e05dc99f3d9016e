"""The local scheduler (``pubsub-jobs cron run``) against the emulator: the worker runs each
firing under ``<schedule>@<slot>``, caught-up slots keep their ids, and the command catches up
then stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.cron import CronState, LocalScheduler
from pubsub_jobs.cron.schedules import schedules_for
from pubsub_jobs.message import format_time, utcnow
from tests import jobs_cron

ROOT = Path(__file__).resolve().parents[2]
EVERY_MINUTE = schedules_for(jobs_cron.REGISTRY).get("tests.jobs_cron.every_minute")
QUARTERLY = jobs_cron.QUARTERLY


@pytest.fixture
def ran():
    jobs_cron.RAN.clear()
    yield jobs_cron.RAN
    jobs_cron.RAN.clear()


def wait_past_a_minute_boundary(margin: float = 2.0) -> None:
    """Keep a test's slot from changing between two of its steps."""
    seconds = utcnow().second + utcnow().microsecond / 1e6
    if seconds > 60 - margin:
        time.sleep(60 - seconds + 0.1)


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
