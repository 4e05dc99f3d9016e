"""Workers' heartbeats on the emulator, as a dashboard hears them: a running worker and its
jobs are seen, a stopped one is gone at once, a SIGKILLed one is lost; a missing heartbeat
topic never disturbs jobs; bootstrap makes the topic and the dashboard's subscription goes
away with it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc

from pubsub_jobs import job
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.admin.queue_status import discover_queues
from pubsub_jobs.admin.topology import bootstrap
from pubsub_jobs.dashboard.listener import HeartbeatListener
from pubsub_jobs.dashboard.workers import WorkerBoard
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker import Worker
from pubsub_jobs.worker.heartbeat import INTERVAL, Heartbeat, beat_payload
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
RELEASE = threading.Event()
RAN: list[int] = []


@job(queue="beats")
def slow(n: int) -> None:
    """Runs until the test releases it."""
    RELEASE.wait(60)
    RAN.append(n)


@pytest.fixture
def listening(pubsub_jobs_settings: Settings,
              bootstrap_queues) -> Iterator[tuple[WorkerBoard, HeartbeatListener]]:
    """A dashboard's listener on queue ``beats``'s project, bootstrapped first."""
    bootstrap_queues("beats")
    board = WorkerBoard()
    listener = HeartbeatListener(pubsub_jobs_settings, board).start()
    try:
        yield board, listener
    finally:
        listener.close()


def test_a_worker_is_seen_with_its_running_jobs_then_gone_when_it_stops(
    pubsub_jobs_settings: Settings, listening
) -> None:
    board, listener = listening
    assert listener.error is None
    RELEASE.clear()
    RAN.clear()
    worker = Worker(["beats=3"], settings=pubsub_jobs_settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        [seen] = wait_for(board.workers, 15, "the worker's first heartbeat")
        assert seen.state == "ok" and seen.beat.pid == os.getpid()
        assert [(q.name, q.concurrency) for q in seen.beat.queues] == [("beats", 3)]
        slow.enqueue(7)
        running = wait_for(lambda: [w for w in board.workers() if w.beat.running],
                           3 * INTERVAL, "a heartbeat with the running job")
        [(job_seen, age)] = running[0].running()
        assert job_seen.job_name == slow.name and job_seen.queue == "beats" and age >= 0
    finally:
        RELEASE.set()
        worker.request_stop()
        thread.join(30)
    assert RAN == [7]
    wait_for(lambda: board.workers() == [], 10, "the worker gone after its stopped beat")
    assert board.received >= 2


class OffsetClock:
    """The monotonic clock, moved ahead by ``offset`` seconds when a test says so."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def test_a_killed_worker_is_shown_as_lost(pubsub_jobs_settings: Settings,
                                          bootstrap_queues) -> None:
    bootstrap_queues("killed")
    clock = OffsetClock()
    board = WorkerBoard(clock)
    listener = HeartbeatListener(pubsub_jobs_settings, board).start()
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_jobs_settings.pubsub_emulator_host or "",
           "PUBSUB_JOBS_PROJECT_ID": pubsub_jobs_settings.require_project(),
           "PUBSUB_JOBS_PREFIX": pubsub_jobs_settings.prefix, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "pubsub_jobs", "worker", "--queue", "killed"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        [seen] = wait_for(board.workers, 30, "the worker process's heartbeat")
        assert seen.beat.pid == proc.pid and seen.state == "ok"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        received = board.received
        time.sleep(INTERVAL + 1)
        assert board.received == received  # no beat since, not even a "stopped" one
        [still] = board.workers()
        assert still.state == "ok"  # a beat may be late: lost after 3 intervals without one
        clock.offset += 3 * INTERVAL
        [lost] = board.workers()
        assert lost.state == "lost" and lost.beat.pid == proc.pid
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        listener.close()


def test_heartbeats_that_cannot_be_published_never_disturb_jobs(
    pubsub_jobs_settings: Settings, bootstrap_queues, drain_queues, caplog
) -> None:
    bootstrap_queues("beats")
    publisher = publisher_client(pubsub_jobs_settings)
    publisher.delete_topic(topic=pubsub_jobs_settings.workers_topic_path())
    publisher.stop()
    RELEASE.set()
    RAN.clear()
    slow.enqueue(1)
    slow.enqueue(2)
    with caplog.at_level(logging.WARNING, logger="pubsub_jobs.worker.heartbeat"):
        worker = drain_queues("beats", idle=1.0)
    assert sorted(RAN) == [1, 2] and worker.stats.processed == 2
    warnings = [r.getMessage() for r in caplog.records if "heartbeat" in r.getMessage()]
    assert len(warnings) == 1 and "does not exist" in warnings[0]


def test_bootstrap_creates_the_heartbeat_topic_and_keeps_its_name_apart(
    pubsub_jobs_settings: Settings, bootstrap_queues
) -> None:
    settings = pubsub_jobs_settings
    report = bootstrap_queues("beats")
    assert settings.workers_topic_path() not in report.created  # shared, not the queue's
    publisher = publisher_client(settings)
    try:
        publisher.get_topic(topic=settings.workers_topic_path())
    finally:
        publisher.stop()
    assert bootstrap(["beats"], settings).created == []
    assert discover_queues(settings) == ["beats"]
    with pytest.raises(ConfigurationError, match="'workers' is taken"):
        bootstrap(["workers"], settings)


def test_the_dashboard_subscription_is_deleted_on_close(pubsub_jobs_settings: Settings,
                                                        bootstrap_queues) -> None:
    bootstrap_queues("beats")
    listener = HeartbeatListener(pubsub_jobs_settings, WorkerBoard()).start()
    subscriber = subscriber_client(pubsub_jobs_settings)
    try:
        made = subscriber.get_subscription(subscription=listener.subscription)
        assert made.topic == pubsub_jobs_settings.workers_topic_path()
        assert made.expiration_policy.ttl.days == 1
        listener.close()
        listener.close()
        with pytest.raises(gexc.NotFound):
            subscriber.get_subscription(subscription=listener.subscription)
    finally:
        subscriber.close()


def test_no_heartbeat_topic_is_reported_then_listened_to_once_it_exists(
    pubsub_jobs_settings: Settings, bootstrap_queues, monkeypatch
) -> None:
    listener = HeartbeatListener(pubsub_jobs_settings, WorkerBoard()).start()
    try:
        assert listener.error is not None and "pubsub-jobs bootstrap" in listener.error
        bootstrap_queues("beats")
        listener.ensure()  # too soon after the last try: nothing happens
        assert listener.error is not None
        monkeypatch.setattr("pubsub_jobs.dashboard.listener.RETRY_SECONDS", 0.0)
        listener.ensure()
        assert listener.error is None
    finally:
        listener.close()


def test_a_beat_is_small_and_says_what_a_dashboard_shows() -> None:
    status = {"pid": 12, "status": "ok", "queues": [{"name": "q", "concurrency": 4,
                                                     "streams": 1, "subscription": "s"}],
              "in_flight": [{"queue": "q", "job_name": "n" * 1000, "job_id": "i",
                             "age_seconds": 3.5}] * 500,
              "processed": 9, "failed": 1}
    payload = beat_payload(status, worker_id="w", state="running", seq=1, interval=5.0,
                           started_at="2026-01-01T00:00:00+00:00")
    assert payload["running_total"] == 500 and len(payload["running"]) == 100
    assert len(payload["running"][0]["job_name"]) == 200
    assert payload["counts"]["processed"] == 9 and payload["queues"][0]["concurrency"] == 4
    assert len(json.dumps(payload)) < 64_000
    beat = Heartbeat(lambda: status, Settings(project_id="p"))
    assert beat.worker_id.endswith(f":{os.getpid()}:" + beat.worker_id.rsplit(":", 1)[1])


def test_the_command_serves_then_deletes_its_subscription_on_sigterm(
    pubsub_jobs_settings: Settings, bootstrap_queues
) -> None:
    bootstrap_queues("beats")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub_jobs_settings.pubsub_emulator_host or "",
           "PUBSUB_JOBS_PROJECT_ID": pubsub_jobs_settings.require_project(),
           "PUBSUB_JOBS_PREFIX": pubsub_jobs_settings.prefix, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pubsub_jobs", "dashboard", "--queue", "beats", "--port",
         str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True)
    try:
        def page() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:  # noqa: S310
                    return str(r.read().decode())
            except OSError:
                return None

        text = wait_for(page, 60, "the dashboard's page")
        assert pubsub_jobs_settings.subscription("beats") in text
        subscriber = subscriber_client(pubsub_jobs_settings)
        try:
            project = f"projects/{pubsub_jobs_settings.require_project()}"
            ours = [s for s in subscriber.list_subscriptions(project=project)
                    if s.name.rsplit("/", 1)[-1].startswith(
                        f"{pubsub_jobs_settings.prefix}workers-dashboard-")]
            assert len(ours) == 1
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
            assert proc.returncode == 0, stderr
            assert "dashboard on http://127.0.0.1" in stderr
            with pytest.raises(gexc.NotFound):
                subscriber.get_subscription(subscription=ours[0].name)
        finally:
            subscriber.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
