"""Delayed jobs and long-wait retries: against both emulators (Pub/Sub and Cloud Tasks), and
the retry policy on the in-memory adapter."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.message import utcnow
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS
from pubsub_jobs.worker import Worker
from tests import jobs_delayed
from tests.jobs_delayed import QUEUE, runs
from tests.waiting import wait_for

#: How late a due job may run on a loaded machine: the emulator checks every 0.1 s.
LATE = timedelta(seconds=10)

DOC = Path(__file__).resolve().parents[2] / "docs" / "delayed-jobs.md"


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex

# --------------------------------------------------------------------- against the emulators


def test_bootstrap_creates_the_cloud_tasks_queue(bootstrap_queues, delayed_jobs_settings) -> None:
    report = bootstrap_queues(QUEUE, settings=delayed_jobs_settings)
    queue = "projects/test-project/locations/us-central1/queues/jobs-delayed"
    assert queue in report.created + report.existing


def test_delayed_job_runs_when_due_and_not_before(worker: Worker, tag: str) -> None:
    result = jobs_delayed.remember.using(delay=timedelta(seconds=3)).enqueue(tag)
    assert result.scheduled_at is not None and result.message_id is None
    wait_for(lambda: bool(runs(tag)))
    [run] = runs(tag)
    assert run.job_id == result.job_id
    assert run.scheduled_at == result.scheduled_at  # the message carried scheduled_at
    assert result.scheduled_at <= run.ran_at < result.scheduled_at + LATE


def test_run_at_in_the_past_runs_at_once(delayed: Settings, drain_queues, tag: str) -> None:
    past = utcnow() - timedelta(hours=1)
    result = jobs_delayed.remember.using(run_at=past).enqueue(tag)
    assert result.message_id is not None  # published to Pub/Sub, not to Cloud Tasks
    drain_queues(QUEUE, settings=delayed, idle=0.5)
    [run] = runs(tag)
    assert run.scheduled_at == past


def test_long_wait_retry_runs_after_its_wait_then_dead_letters(
    worker: Worker, dead_letters, tag: str
) -> None:
    result = jobs_delayed.always_fails_later.enqueue(tag)
    [dead] = dead_letters(QUEUE, expect=1, timeout=30)
    first, second = runs(tag)
    assert (first.attempt, second.attempt) == (1, 2)
    assert first.scheduled_at is None
    assert second.scheduled_at is not None
    assert second.scheduled_at >= first.ran_at + timedelta(seconds=2)
    assert second.scheduled_at <= second.ran_at < second.scheduled_at + LATE
    assert dead.job_id == result.job_id
    assert dead.reason == "max_attempts"
    assert dead.attributes["delivery_attempt"] == "2"
    assert PREVIOUS_ATTEMPTS not in dead.attributes  # a retry from the dead set starts afresh
    assert dead.json() == {"args": [tag], "kwargs": {}}
    assert worker.stats.snapshot()["retried"] == 1


def test_retry_exception_reschedules_through_cloud_tasks(worker: Worker, tag: str) -> None:
    jobs_delayed.asks_to_retry_once.enqueue(tag)
    wait_for(lambda: len(runs(tag)) == 2)
    first, second = runs(tag)
    assert second.attempt == 2
    assert second.scheduled_at is not None and second.scheduled_at >= first.ran_at
    assert second.ran_at >= second.scheduled_at


def test_the_readme_section_examples_run(delayed_jobs_settings, bootstrap_queues) -> None:
    bootstrap_queues("mailers", settings=delayed_jobs_settings)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 3
    namespace: dict[str, object] = {"__name__": "readme_delayed_jobs"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)  # noqa: S102 - our own README
    test = namespace["test_reminder_is_sent_later"]
    assert callable(test)
    test(delayed_jobs_settings, bootstrap_queues)
