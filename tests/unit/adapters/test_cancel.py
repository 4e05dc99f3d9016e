"""Cancelling a job that still waits: the in-memory adapter's delayed jobs, what an
immediate job and an adapter without waiting jobs answer, and the Cloud Tasks task name a
cancel looks for. No emulator (tests/emulator/test_cancel.py deletes real tasks)."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import uuid
from datetime import timedelta

import pytest

import pubsub_jobs
from pubsub_jobs import (
    ConfigurationError,
    EnqueuedJob,
    ImmediateAdapter,
    InMemoryAdapter,
    JobMessage,
    PubSubAdapter,
    Settings,
)
from pubsub_jobs import queues as queues_module
from pubsub_jobs.adapters.cloud_tasks import (
    CloudTasksScheduler,
    task_id,
    task_name,
    tasks_queue_path,
)
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS, RESCHEDULED_FROM
from pubsub_jobs.queues import queue as declare_queue
from tests import jobs_delayed
from tests.jobs_delayed import QUEUE, runs


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------- the in-memory adapter


def test_a_waiting_delayed_job_is_cancelled_and_never_runs(memory_adapter, tag):
    result = jobs_delayed.remember.using(delay=timedelta(hours=1)).enqueue(tag)
    assert result.cancel() is True
    assert memory_adapter.delayed_jobs() == []
    memory_adapter.advance(timedelta(hours=2))
    summary = memory_adapter.run()
    assert (summary.outcomes, summary.delayed) == ([], 0)
    assert runs(tag) == []


def test_cancelling_twice_answers_false_the_second_time(memory_adapter, tag, caplog):
    result = jobs_delayed.remember.using(delay=60).enqueue(tag)
    assert result.cancel() is True
    with caplog.at_level(logging.INFO, logger="pubsub_jobs.adapters.memory"):
        assert result.cancel() is False
    assert f"job {result.job_id} of queue {QUEUE!r} was not cancelled" in caplog.text


def test_a_job_already_due_is_not_cancelled_and_runs(memory_adapter, tag):
    result = jobs_delayed.remember.using(delay=60).enqueue(tag)
    memory_adapter.advance(61)  # due on the adapter's clock: Cloud Tasks would have sent it
    assert result.cancel() is False
    memory_adapter.run()
    assert [r.job_id for r in runs(tag)] == [result.job_id]


def test_cancel_by_id_from_elsewhere_cancels_only_that_job(memory_adapter, tag):
    kept = jobs_delayed.remember.using(delay=60).enqueue(tag)
    dropped = jobs_delayed.remember.using(delay=60).enqueue(tag)
    assert pubsub_jobs.cancel(dropped.job_id, queue="elsewhere") is False  # not its queue
    assert pubsub_jobs.cancel("no-such-job", queue=QUEUE) is False
    assert pubsub_jobs.cancel(dropped.job_id, queue=QUEUE) is True  # the default adapter
    assert [j.job_id for j in memory_adapter.delayed_jobs()] == [kept.job_id]
    other = InMemoryAdapter()
    assert pubsub_jobs.cancel(kept.job_id, queue=QUEUE, adapter=other) is False
    memory_adapter.advance(61)
    memory_adapter.run()
    assert [r.job_id for r in runs(tag)] == [kept.job_id]


def test_enqueue_many_results_cancel_their_delayed_jobs(memory_adapter, tag):
    now = jobs_delayed.remember.enqueue_many([(tag,)])
    later = jobs_delayed.remember.using(delay=60).enqueue_many([(tag,), {"tag": tag}])
    assert [r.cancel() for r in later] == [True, True]
    assert now[0].cancel() is False  # already in its queue
    memory_adapter.advance(61)
    memory_adapter.run()
    assert [r.job_id for r in runs(tag)] == [now[0].job_id]


# --------------------------------------------------------------------- jobs that cannot be


def test_an_immediate_job_is_already_in_pub_sub_and_cannot_be_cancelled(
    memory_adapter, tag, caplog
):
    result = jobs_delayed.remember.enqueue(tag)
    assert result.message_id is not None
    with caplog.at_level(logging.INFO, logger="pubsub_jobs.message"):
        assert result.cancel() is False
    assert "a job already in Pub/Sub cannot be cancelled" in caplog.text
    assert result.job_id in caplog.text
    memory_adapter.run()
    assert len(runs(tag)) == 1  # it still runs


def test_an_adapter_without_waiting_jobs_says_so(tag, caplog):
    adapter = ImmediateAdapter()
    with pytest.raises(ConfigurationError, match="ImmediateAdapter holds no waiting jobs, so "
                       "job 'x' of queue 'delayed' cannot be cancelled"):
        pubsub_jobs.cancel("x", queue=QUEUE, adapter=adapter)
    result = jobs_delayed.remember.using(adapter=adapter, delay=60).enqueue(tag)
    assert len(runs(tag)) == 1  # the immediate adapter ran it at once
    with caplog.at_level(logging.INFO, logger="pubsub_jobs.message"):
        assert result.cancel() is False
    assert "held nothing back (it ran at once" in caplog.text


def test_the_canceller_is_not_part_of_the_value(memory_adapter):
    result = jobs_delayed.remember.using(delay=60).enqueue("x")
    plain = EnqueuedJob(job_id=result.job_id, job_name=result.job_name, queue=result.queue,
                        message_id=result.message_id, scheduled_at=result.scheduled_at)
    assert result == plain and hash(result) == hash(plain)
    assert repr(result) == repr(plain) and "cancel" not in repr(result)
    # a deep copy (asdict) shares the adapter rather than copying it, locks and all
    assert dataclasses.asdict(result)["job_id"] == result.job_id
    assert copy.deepcopy(result).cancel() is True
    assert memory_adapter.delayed_jobs() == []


def test_a_pickled_result_cancels_by_id_instead(memory_adapter):
    result = jobs_delayed.remember.using(delay=60).enqueue("x")
    loaded = pickle.loads(pickle.dumps(result))  # noqa: S301 - our own bytes
    assert loaded == result
    with pytest.raises(ConfigurationError, match=r"was unpickled, without the adapter that "
                       r"enqueued it: cancel it with pubsub_jobs.cancel\("):
        loaded.cancel()
    assert pubsub_jobs.cancel(loaded.job_id, queue=loaded.queue) is True


# --------------------------------------------------------------------- the Pub/Sub adapter


def test_cancel_without_a_cloud_tasks_location_is_a_sentence():
    adapter = PubSubAdapter(Settings(project_id="p"))
    with pytest.raises(ConfigurationError, match="need a Cloud Tasks location: set "
                       "PUBSUB_JOBS_CLOUD_TASKS_LOCATION"):
        adapter.cancel("some-job", "default")
    assert adapter._tasks_client is None  # nothing was built, nothing to close


@pytest.fixture
def rated() -> object:
    declared = declare_queue("cancel-rated", rate_limit=5)
    yield declared
    queues_module.declared_queues.remove("cancel-rated")


SETTINGS = Settings(project_id="p", cloud_tasks_location="europe-west1",
                    cloud_tasks_service_account="s@p.iam.gserviceaccount.com")


@pytest.mark.parametrize("queue", [QUEUE, "cancel-rated"])
@pytest.mark.usefixtures("rated")
def test_the_task_name_is_the_one_the_job_was_scheduled_under(queue: str) -> None:
    """One derivation: the name cancel deletes is task_id() of the job's message, in the
    Cloud Tasks queue the queue's jobs wait in (its own -rate queue when rate-limited)."""
    message = JobMessage(job_name="j", queue=queue, args=[1], kwargs={}, job_id="j/1 ü")
    scheduled = CloudTasksScheduler(SETTINGS).build_task(message)
    name = task_name(SETTINGS, queue, message.job_id)
    where, _, task = name.partition("/tasks/")
    assert task == scheduled.name.rpartition("/tasks/")[2]
    assert task == task_id(SETTINGS.topic_path(queue), message)
    assert where == tasks_queue_path(SETTINGS, queue)
    rate_queue = "projects/p/locations/europe-west1/queues/jobs-cancel-rated-rate"
    assert (where == rate_queue) is (queue == "cancel-rated")


def test_a_long_wait_retry_is_not_found_by_job_id() -> None:
    message = JobMessage(job_name="j", queue=QUEUE, args=[], kwargs={}, job_id="j1")
    retry = message.with_attributes(**{PREVIOUS_ATTEMPTS: "1", RESCHEDULED_FROM: "m1"})
    scheduled = CloudTasksScheduler(SETTINGS).build_task(retry)
    assert task_name(SETTINGS, QUEUE, "j1") != scheduled.name


def test_a_waiting_unique_job_is_cancelled(memory_adapter, tag):
    from tests import jobs_unique

    result = jobs_unique.remember.using(unique_for=3600, delay=60).enqueue(tag)
    assert result.cancel() is True
    memory_adapter.advance(120)
    memory_adapter.run()
    assert jobs_unique.runs(tag) == []


def test_a_rate_limited_job_its_bucket_holds_is_cancelled(memory_adapter, tag):
    from tests import jobs_unique

    queues_module.declared_queues.remove(jobs_unique.PACED)
    declare_queue(jobs_unique.PACED, rate_limit=1)
    try:
        first, second = (jobs_unique.paced.enqueue(tag, n) for n in (1, 2))
        assert second.cancel() is True  # still held: the bucket releases one a second
        memory_adapter.advance(5)
        memory_adapter.run()
        assert jobs_unique.runs(tag) == [(first.job_id, 1)]
        assert first.cancel() is False  # released, and ran
    finally:
        queues_module.declared_queues.remove(jobs_unique.PACED)
