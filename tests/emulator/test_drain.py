"""``drain_queues(..., wait_for_delayed=True)``: against both emulators, the drain returns
only once the delayed jobs Cloud Tasks held for the queues have been published and run."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.testing import pending_delayed_jobs
from tests import jobs_core, jobs_delayed
from tests.jobs_delayed import QUEUE, runs


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def delayed(bootstrap_queues: Callable[..., object], delayed_jobs_settings: Settings) -> Settings:
    bootstrap_queues(QUEUE, settings=delayed_jobs_settings)
    return delayed_jobs_settings


def test_waits_for_a_delayed_job_and_runs_it(delayed, drain_queues, tag) -> None:
    result = jobs_delayed.remember.using(delay=2).enqueue(tag)
    jobs_delayed.remember.enqueue(f"{tag}-now")
    worker = drain_queues(QUEUE, wait_for_delayed=True, idle=0.5)
    [run] = runs(tag)
    assert run.job_id == result.job_id and run.scheduled_at == result.scheduled_at
    assert len(runs(f"{tag}-now")) == 1
    assert worker.stats.processed == 2
    assert pending_delayed_jobs([QUEUE], delayed) == []


def test_waits_for_long_wait_retries_until_the_job_is_dead(
    delayed, drain_queues, dead_letters, tag
) -> None:
    jobs_delayed.always_fails_later.enqueue(tag)  # retried once after 2 s, then dead
    jobs_delayed.asks_to_retry_once.enqueue(tag)  # Retry(delay=1 s), then succeeds
    drain_queues(QUEUE, wait_for_delayed=True, idle=0.5)
    attempts = sorted(r.attempt for r in runs(tag))
    assert attempts == [1, 1, 2, 2]
    [dead] = dead_letters(QUEUE, expect=1)
    assert (dead.job_name, dead.reason, dead.attempts) == (
        jobs_delayed.always_fails_later.name, "max_attempts", 2)


def test_lists_the_pending_delayed_jobs_of_its_queues_only(
    delayed, bootstrap_queues, tag
) -> None:
    bootstrap_queues("core", settings=delayed)
    result = jobs_delayed.remember.using(delay=timedelta(hours=1)).enqueue(tag)
    jobs_core.add.using(delay=timedelta(hours=1)).enqueue(1, 2)
    [pending] = pending_delayed_jobs([QUEUE], delayed)
    assert (pending.queue, pending.job_id, pending.job_name) == (
        QUEUE, result.job_id, jobs_delayed.remember.name)
    assert pending.due == result.scheduled_at and pending.dispatches == 0
    assert "remember" in pending.describe() and "in 3" in pending.describe()
    assert len(pending_delayed_jobs([QUEUE, "core"], delayed)) == 2


def test_fails_at_once_naming_a_job_due_after_the_timeout(delayed, drain_queues, tag) -> None:
    result = jobs_delayed.remember.using(delay=timedelta(hours=1)).enqueue(tag)
    with pytest.raises(TimeoutError) as info:
        drain_queues(QUEUE, wait_for_delayed=True, timeout=30)
    message = str(info.value)
    assert jobs_delayed.remember.name in message and result.job_id in message
    assert "due after the timeout of 30 s" in message
    assert runs(tag) == []


def test_needs_cloud_tasks_settings(pubsub_jobs_settings, bootstrap_queues, drain_queues):
    bootstrap_queues("core")
    with pytest.raises(ConfigurationError, match="Cloud Tasks location"):
        drain_queues("core", wait_for_delayed=True)


def test_a_pending_job_says_how_its_last_publish_went(delayed, tag) -> None:
    """A delayed job for a queue with no topic: Cloud Tasks tries to publish it, the Pub/Sub
    emulator answers 404, and the pending job says so (``last_status`` is the attempt's status
    message, not a gRPC code shown as an HTTP status)."""
    from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_client
    from tests.waiting import wait_for

    ghost = f"ghost-{tag[:8]}"
    jobs_delayed.remember.using(queue=ghost, delay=0.5).enqueue(tag)

    def tried() -> list:
        return [p for p in pending_delayed_jobs([ghost], delayed) if p.last_status]

    try:
        [pending] = wait_for(tried, timeout=30, what="the first publish of the task")
        assert pending.last_status == "HTTP status 404", pending.last_status
        assert "last: HTTP status 404" in pending.describe()
    finally:
        client = cloud_tasks_client(delayed)
        for pending in pending_delayed_jobs([ghost], delayed):
            client.delete_task(name=pending.task)
