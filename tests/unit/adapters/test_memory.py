"""The in-memory adapter as a test helper: dead jobs in the dead set's model, retrying them,
delayed jobs on the adapter's own clock. No emulator, no sleeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from pubsub_jobs import (
    Adapter,
    DeadJobNotFound,
    EnqueuedJob,
    ImmediateAdapter,
    InMemoryAdapter,
    JobMessage,
    PubSubAdapter,
    use_adapter,
)
from pubsub_jobs.adapter import result_for
from pubsub_jobs.dead import DeadJob
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.outcome import Action
from tests import jobs_core, jobs_delayed
from tests.jobs_delayed import QUEUE, runs


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------- dead jobs


def test_dead_jobs_are_the_dead_sets_model(memory_adapter, ran):
    result = jobs_core.always_fails.enqueue("x")
    memory_adapter.run()
    [dead] = memory_adapter.dead_jobs("core")
    assert isinstance(dead, DeadJob)  # the class `pubsub-jobs dead list` shows
    assert dead.job_id == result.job_id and dead.id == result.job_id
    assert dead.job_name == jobs_core.always_fails.name
    assert (dead.queue, dead.reason, dead.attempts) == ("core", "max_attempts", 3)
    assert dead.dead_lettered_by == "worker" and not dead.reason_derived
    assert "RuntimeError" in dead.error and "boom x" in dead.error
    assert (dead.args, dead.kwargs) == (["x"], {})
    assert dead.dead_lettered_at is not None
    assert dead.original_attributes["job_id"] == result.job_id
    assert memory_adapter.dead["core"] == [dead]  # the raw copies: .data and .attributes
    assert dead.json() == {"args": ["x"], "kwargs": {}}


def test_dead_jobs_filter_like_the_command_line(memory_adapter):
    jobs_core.always_fails.enqueue("a")
    memory_adapter.publish_raw("core", b"{", {"job_name": "nope"})
    memory_adapter.publish_raw("other", b"{}", {})
    memory_adapter.run()
    assert [d.reason for d in memory_adapter.dead_jobs("core")] == [
        "invalid_message", "max_attempts"]
    assert len(memory_adapter.dead_jobs()) == 3
    assert [d.job_name for d in memory_adapter.dead_jobs(reason="max_attempts")] == [
        jobs_core.always_fails.name]
    assert [d.queue for d in memory_adapter.dead_jobs(job_name="nope")] == ["core"]


def test_retry_dead_puts_the_job_back_like_dead_retry(memory_adapter, ran):
    result = jobs_core.always_fails.enqueue("r")
    memory_adapter.run()
    [dead] = memory_adapter.dead_jobs("core")
    assert memory_adapter.retry_dead("core", [result.job_id]) == [result.job_id]
    assert memory_adapter.dead_jobs() == []
    [job] = memory_adapter.jobs("core")
    assert job.job_id == result.job_id and job.args == ["r"]
    assert job.attributes["retried_from"] == dead.message_id
    assert job.attributes["retried_count"] == "1"
    assert "dead_letter_reason" not in job.attributes
    ran.clear()
    memory_adapter.run()
    assert ran == [("always_fails", 1), ("always_fails", 2), ("always_fails", 3)]  # afresh
    [again] = memory_adapter.dead_jobs("core")
    assert again.attributes["retried_count"] == "1"


def test_retry_dead_selects_by_id_name_reason_or_every(memory_adapter):
    jobs_core.always_fails.enqueue("a")
    jobs_core.always_fails.enqueue("b")
    memory_adapter.publish_raw("core", b"{", {})
    memory_adapter.run()
    with pytest.raises(ConfigurationError, match="say which"):
        memory_adapter.retry_dead("core")
    with pytest.raises(ConfigurationError, match="not both"):
        memory_adapter.retry_dead("core", ["x"], every=True)
    with pytest.raises(DeadJobNotFound, match="'missing'"):
        memory_adapter.retry_dead("core", ["missing"])
    assert len(memory_adapter.dead_jobs("core")) == 3  # nothing retried
    assert len(memory_adapter.retry_dead("core", reason="invalid_message")) == 1
    assert len(memory_adapter.retry_dead("core", every=True)) == 2
    assert memory_adapter.dead_jobs() == [] and len(memory_adapter.queues["core"]) == 3


# --------------------------------------------------------------------- delayed jobs


def test_a_delayed_job_runs_once_the_clock_reaches_it(memory_adapter, tag):
    jobs_delayed.remember.using(delay=timedelta(hours=1)).enqueue(tag)
    summary = memory_adapter.run()
    assert (summary.outcomes, summary.delayed) == ([], 1)
    [held] = memory_adapter.delayed_jobs()
    assert held.args == [tag] and memory_adapter.jobs() == []

    memory_adapter.advance(timedelta(minutes=59))
    assert memory_adapter.run().outcomes == [] and runs(tag) == []
    memory_adapter.advance(60)  # seconds
    summary = memory_adapter.run()
    assert (summary.succeeded, summary.delayed) == (1, 0)
    [run] = runs(tag)
    assert run.scheduled_at == held.scheduled_at  # the job sees when it was due


def test_run_at_follows_the_adapter_clock(memory_adapter, tag):
    due = memory_adapter.now + timedelta(days=2)
    jobs_delayed.remember.using(run_at=due).enqueue(tag)
    memory_adapter.advance(timedelta(days=1))
    memory_adapter.run()
    assert runs(tag) == []
    assert memory_adapter.advance(timedelta(days=1)) >= due
    memory_adapter.run()
    assert len(runs(tag)) == 1


def test_a_delay_counts_from_when_it_was_given_on_the_adapter_clock(memory_adapter, tag):
    """After the clock moved a day, a job delayed by an hour still waits an hour."""
    memory_adapter.advance(timedelta(days=1))
    jobs_delayed.remember.using(delay=timedelta(hours=1)).enqueue(tag)
    memory_adapter.run()
    assert runs(tag) == []
    memory_adapter.advance(timedelta(hours=1))
    memory_adapter.run()
    assert len(runs(tag)) == 1


def test_delayed_jobs_are_listed_soonest_first_per_queue(memory_adapter):
    jobs_delayed.remember.using(delay=300).enqueue("later")
    jobs_delayed.remember.using(delay=60).enqueue("sooner")
    jobs_core.add.using(delay=120).enqueue(1, 2)
    assert [j.args for j in memory_adapter.delayed_jobs()] == [["sooner"], [1, 2], ["later"]]
    assert [j.args for j in memory_adapter.delayed_jobs(QUEUE)] == [["sooner"], ["later"]]


def test_long_wait_retries_wait_on_the_clock_until_dead(memory_adapter, tag):
    jobs_delayed.always_fails_later.enqueue(tag)  # retry_wait 2 s, max_attempts 2
    summary = memory_adapter.run()
    assert [o.action for o in summary.outcomes] == [Action.RESCHEDULE]
    assert summary.delayed == 1 and memory_adapter.dead_jobs() == []
    memory_adapter.advance(1)
    assert memory_adapter.run().outcomes == []
    memory_adapter.advance(1)
    summary = memory_adapter.run()
    assert [o.action for o in summary.outcomes] == [Action.DEAD_LETTER]
    [dead] = memory_adapter.dead_jobs(QUEUE)
    assert (dead.reason, dead.attempts) == ("max_attempts", 2)
    assert [r.attempt for r in runs(tag)] == [1, 2]


def test_retry_with_a_delay_then_success(memory_adapter, tag):
    jobs_delayed.asks_to_retry_once.enqueue(tag)  # Retry(delay=1 s) on attempt 1
    memory_adapter.run()
    memory_adapter.advance(timedelta(seconds=1))
    assert memory_adapter.run().succeeded == 1
    assert [r.attempt for r in runs(tag)] == [1, 2]


def test_include_delayed_runs_everything_at_once(memory_adapter, tag):
    jobs_delayed.remember.using(delay=timedelta(days=3)).enqueue(tag)
    jobs_delayed.always_fails_later.enqueue(tag)
    summary = memory_adapter.run(include_delayed=True)
    assert summary.delayed == 0 and summary.dead_lettered == 1
    assert len(runs(tag)) == 3


def test_advance_refuses_to_go_back():
    adapter = InMemoryAdapter()
    with pytest.raises(ValueError, match="forward only"):
        adapter.advance(-1)


def test_clear_forgets_jobs_but_keeps_the_clock(memory_adapter):
    jobs_delayed.remember.using(delay=10).enqueue("x")
    jobs_core.always_fails.enqueue("y")
    memory_adapter.run()
    later = memory_adapter.advance(3)
    memory_adapter.clear()
    assert (memory_adapter.jobs(), memory_adapter.delayed_jobs(),
            memory_adapter.dead_jobs()) == ([], [], [])
    assert memory_adapter.now >= later


# --------------------------------------------------------------------- capabilities


class _NowOnly(Adapter):
    """An adapter that publishes now and cannot hold a job (``supports_delay`` is False)."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[JobMessage] = []

    def publish(self, message: JobMessage) -> EnqueuedJob:
        self.published.append(message)
        return result_for(message, str(len(self.published)))


def test_the_adapters_that_hold_jobs_say_so():
    assert InMemoryAdapter.supports_delay and ImmediateAdapter.supports_delay
    assert PubSubAdapter.supports_delay and not Adapter.supports_delay


def test_using_a_delay_with_an_adapter_that_cannot_hold_it_refuses_at_once():
    adapter = _NowOnly()
    for options in ({"delay": 10}, {"delay": timedelta(minutes=1)},
                    {"run_at": datetime.now(UTC) + timedelta(hours=1)}):
        with pytest.raises(ConfigurationError, match=(
                "_NowOnly cannot hold delayed jobs .*enqueue without delay= or run_at=")):
            jobs_core.add.using(adapter=adapter, **options)
    assert adapter.published == []


def test_a_delay_that_is_already_due_publishes_at_once_without_delay_support():
    adapter = _NowOnly()
    jobs_core.add.using(adapter=adapter, delay=0).enqueue(1, 2)
    jobs_core.add.using(adapter=adapter, run_at=datetime.now(UTC) - timedelta(1)).enqueue(3, 4)
    assert [m.args for m in adapter.published] == [[1, 2], [3, 4]]


def test_the_default_adapter_refuses_a_delay_when_first_used():
    """``using()`` names no adapter: the default one is known only when a job is enqueued
    (tests install theirs after the job modules were imported), so it refuses then, before
    anything is published."""
    delayed = jobs_core.add.using(delay=10)  # no adapter resolved yet: nothing to refuse
    adapter = _NowOnly()
    with use_adapter(adapter):
        with pytest.raises(ConfigurationError, match="_NowOnly cannot hold delayed jobs"):
            delayed.enqueue(1, 2)
        with pytest.raises(ConfigurationError, match="_NowOnly cannot hold delayed jobs"):
            delayed.enqueue_many([(1, 2), (3, 4)])
        jobs_core.add.enqueue(5, 6)
    assert [m.args for m in adapter.published] == [[5, 6]]


def test_enqueue_many_publishes_one_by_one_unless_the_adapter_batches():
    adapter = _NowOnly()
    results = jobs_core.add.using(adapter=adapter).enqueue_many([(1, 2), {"a": 3, "b": 4}])
    assert [r.message_id for r in results] == ["1", "2"]
    assert [m.args for m in adapter.published] == [[1, 2], [3, 4]]
