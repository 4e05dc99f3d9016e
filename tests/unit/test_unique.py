"""Unique jobs and rate-limited queues without an emulator: the options' validation, the key,
window and job id derivation, and how the in-memory and immediate adapters model them."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from pubsub_jobs import queues
from pubsub_jobs.adapter import Adapter, result_for
from pubsub_jobs.adapters.memory import InMemoryAdapter
from pubsub_jobs.admin.topology import bootstrap
from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.message import EnqueuedJob, JobMessage
from pubsub_jobs.settings import load_settings
from pubsub_jobs.unique import default_key, unique_job_id, window_of
from tests import jobs_unique
from tests.jobs_unique import PACED, QUEUE, runs


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def paced() -> Iterator[queues.Queue]:
    """Queue ``paced`` declared with rate_limit=3 for the test."""
    queues.declared_queues.remove(PACED)
    declared = queues.queue(PACED, rate_limit=3)
    yield declared
    queues.declared_queues.remove(PACED)


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(("options", "sentence"), [
    ({"unique_for": 0.5}, "unique_for=0.5 s is out of range: a unique job's window is 1 "
     "second to 30 days (the longest Cloud Tasks holds a task); give a window in that range"),
    ({"unique_for": timedelta(days=31)}, "unique_for=2.6784e+06 s is out of range"),
    ({"unique_for": 0}, "unique_for=0 s is out of range"),
    ({"unique_for": True}, "unique_for is a timedelta or seconds, not True"),
    ({"unique_for": "10m"}, "unique_for is a timedelta or seconds, not '10m'"),
    ({"unique_key": "k"}, "unique_key= goes with unique_for= (how long the key stays "
     "unique): give both"),
    ({"unique_for": 60, "unique_key": ""}, "unique_key is a non-empty string, not ''"),
    ({"unique_for": 60, "unique_key": 42}, "unique_key is a non-empty string, not 42"),
    ({"unique_for": 60, "unique_key": "k" * 1001}, "unique_key is 1001 characters; at most "
     "1000: pass a shorter key"),
    ({"unique_for": 60, "job_id": "mine"}, "a unique job's id derives from its key and "
     "window: give unique_for= or job_id=, not both"),
])
def test_bad_unique_options_are_refused_in_using_with_a_sentence(
    options: dict[str, object], sentence: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        jobs_unique.remember.using(**options)  # type: ignore[arg-type]
    assert str(caught.value).startswith(sentence)


def test_the_bounds_themselves_are_accepted() -> None:
    jobs_unique.remember.using(unique_for=1)
    jobs_unique.remember.using(unique_for=timedelta(days=30), unique_key="k")


class _NowOnly(Adapter):
    """Publishes now; cannot hold a task (``supports_delay`` is False)."""

    def publish(self, message: JobMessage) -> EnqueuedJob:
        raise AssertionError("nothing is published")


def test_an_adapter_that_cannot_hold_tasks_refuses_unique_jobs() -> None:
    with pytest.raises(ConfigurationError, match=(
            r"^_NowOnly cannot hold unique jobs \(supports_delay is False: uniqueness is a "
            r"Cloud Tasks task name\): enqueue without unique_for=")):
        jobs_unique.remember.using(unique_for=60, adapter=_NowOnly())


def test_bootstrap_of_a_rate_limited_queue_needs_a_cloud_tasks_location(paced) -> None:
    settings = load_settings(project_id="p", cloud_tasks_location=None)
    with pytest.raises(ConfigurationError, match=(
            "^queue 'paced' is declared with rate_limit, so its jobs go through a Cloud Tasks "
            "queue of its own: set PUBSUB_JOBS_CLOUD_TASKS_LOCATION")):
        bootstrap([QUEUE, PACED], settings)  # refused before any client is made


# --------------------------------------------------------------------- derivation


def test_the_job_id_is_stable_and_says_its_window() -> None:
    # A literal: every process, every version, derives the same id from the same inputs.
    first = unique_job_id("emails", "k", 600.0, 2_900_000)
    assert first == "unique-2900000-fc582d879b92d34665981901d61d2755"
    others = {unique_job_id("other", "k", 600.0, 2_900_000),
              unique_job_id("emails", "k2", 600.0, 2_900_000),
              unique_job_id("emails", "k", 60.0, 2_900_000),
              unique_job_id("emails", "k", 600.0, 2_900_001)}
    assert first not in others and len(others) == 4


def test_the_default_key_is_the_name_and_arguments_in_a_canonical_form() -> None:
    assert default_key("j", [1], {"b": 2, "a": 1}) == default_key("j", [1], {"a": 1, "b": 2})
    assert default_key("j", [1], {}) == '["j",[1],{}]'
    assert default_key("j", [1], {}) != default_key("j", [2], {})
    assert default_key("j", [1], {}) != default_key("k", [1], {})


def test_windows_are_aligned_to_the_epoch() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert window_of(epoch + timedelta(seconds=599.999), 600) == 0
    assert window_of(epoch + timedelta(seconds=600), 600) == 1
    now = datetime.now(UTC)
    assert window_of(now, 2.0) == math.floor(now.timestamp() / 2.0)


# --------------------------------------------------------------------- in-memory adapter


def test_a_unique_job_twice_in_its_window_is_enqueued_once(memory_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    first = unique.enqueue(tag, 1)
    second = unique.enqueue(tag, 1)
    other = unique.enqueue(tag, 2)  # other arguments: another key
    assert not first.duplicate and second.duplicate and not other.duplicate
    assert second.job_id == first.job_id != other.job_id
    assert second.message_id is None
    assert memory_adapter.run().succeeded == 2
    assert sorted(runs(tag)) == sorted([(first.job_id, 1), (other.job_id, 2)])


def test_unique_key_replaces_the_arguments_as_the_key(memory_adapter, tag) -> None:
    keyed = jobs_unique.remember.using(unique_for=60, unique_key=f"user-{tag}")
    first, second = keyed.enqueue(tag, 1), keyed.enqueue(tag, 2)
    assert second.duplicate and second.job_id == first.job_id
    memory_adapter.run()
    assert runs(tag) == [(first.job_id, 1)]


def _to_window_start(adapter: InMemoryAdapter, seconds: float) -> None:
    """Move the adapter's clock a minute into the next window of ``seconds``."""
    now = adapter.now.timestamp()
    adapter.advance((math.floor(now / seconds) + 1) * seconds - now + 60)


def test_the_next_window_enqueues_again_on_the_adapter_clock(memory_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    _to_window_start(memory_adapter, 600)
    first = unique.enqueue(tag)
    memory_adapter.run()
    memory_adapter.advance(timedelta(minutes=5))  # same window, the job ran: still taken
    assert unique.enqueue(tag).duplicate
    memory_adapter.advance(timedelta(minutes=5))  # the next window
    again = unique.enqueue(tag)
    assert not again.duplicate and again.job_id != first.job_id
    assert int(again.job_id.split("-")[1]) == int(first.job_id.split("-")[1]) + 1


def test_a_long_window_refuses_for_an_hour_after_the_job_left(memory_adapter, tag) -> None:
    """As in Cloud Tasks: a task name is taken while the task waits and for an hour after it
    was dispatched (at once, for a job due now); past that, within a longer window, the job
    is enqueued again, under the same id."""
    unique = jobs_unique.remember.using(unique_for=timedelta(days=1))
    _to_window_start(memory_adapter, 86400)
    first = unique.enqueue(tag)
    memory_adapter.advance(timedelta(minutes=59))
    assert unique.enqueue(tag).duplicate
    memory_adapter.advance(timedelta(minutes=2))
    again = unique.enqueue(tag)
    assert not again.duplicate and again.job_id == first.job_id  # same window, same id
    memory_adapter.run()
    assert runs(tag) == [(first.job_id, 0), (first.job_id, 0)]


def test_a_waiting_task_holds_its_name_however_long_it_waits(memory_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(days=2), delay=timedelta(days=1))
    _to_window_start(memory_adapter, 2 * 86400)
    unique.enqueue(tag)
    memory_adapter.advance(timedelta(hours=23))
    assert unique.enqueue(tag).duplicate
    memory_adapter.advance(timedelta(hours=1))
    assert memory_adapter.run().succeeded == 1  # it left now: taken for another hour
    memory_adapter.advance(timedelta(minutes=59))
    assert unique.enqueue(tag).duplicate
    memory_adapter.advance(timedelta(minutes=2))
    assert not unique.enqueue(tag).duplicate


def test_a_unique_delayed_job_waits_and_holds_its_name(memory_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(hours=1), delay=timedelta(minutes=5))
    first = unique.enqueue(tag)
    assert unique.enqueue(tag).duplicate
    assert memory_adapter.run().succeeded == 0
    assert [j.job_id for j in memory_adapter.delayed_jobs()] == [first.job_id]
    memory_adapter.advance(timedelta(minutes=5))
    assert memory_adapter.run().succeeded == 1


def test_enqueue_many_flags_each_duplicate(memory_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=60)
    before = unique.enqueue(tag, 9)
    results = unique.enqueue_many([(tag, 1), (tag, 2), (tag, 1), (tag, 9), (tag, 3)])
    assert [r.duplicate for r in results] == [False, False, True, True, False]
    assert results[2].job_id == results[0].job_id and results[3].job_id == before.job_id
    assert memory_adapter.run().succeeded == 4


def test_the_immediate_adapter_runs_a_unique_job_once(immediate_adapter, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=60)
    first, second = unique.enqueue(tag), unique.enqueue(tag)
    assert not first.duplicate and second.duplicate
    assert runs(tag) == [(first.job_id, 0)]


def test_a_rate_limited_queue_releases_its_rate_a_second_of_the_clock(
    memory_adapter, paced, tag
) -> None:
    jobs_unique.paced.enqueue_many([(tag, n) for n in range(7)])
    # held, as in its Cloud Tasks queue
    assert memory_adapter.jobs(PACED) == [] and len(memory_adapter.delayed_jobs(PACED)) == 7
    summary = memory_adapter.run()  # a full bucket: 3
    assert (summary.succeeded, summary.delayed) == (3, 4)
    memory_adapter.advance(1)
    assert memory_adapter.run().succeeded == 3
    memory_adapter.advance(10)  # the bucket holds 3 at most
    assert memory_adapter.run().succeeded == 1
    assert [n for _, n in runs(tag)] == list(range(7))  # in the order enqueued


def test_a_rate_limited_queue_leaves_other_queues_alone(memory_adapter, paced, tag) -> None:
    jobs_unique.paced.enqueue_many([(tag, n) for n in range(5)])
    jobs_unique.remember.enqueue_many([(tag, n) for n in range(10, 15)])
    assert memory_adapter.run().succeeded == 3 + 5


def test_enqueue_many_returns_results_in_the_order_given(memory_adapter, paced, tag) -> None:
    messages = [jobs_unique.remember.message(tag, 1), jobs_unique.paced.message(tag, 2),
                jobs_unique.remember.using(delay=60).message(tag, 3),
                jobs_unique.remember.message(tag, 4)]
    results = memory_adapter.enqueue_many(messages)
    assert [r.job_id for r in results] == [m.job_id for m in messages]
    assert [r.message_id is None for r in results] == [False, False, False, False]
    assert result_for(messages[0], results[0].message_id) == results[0]
