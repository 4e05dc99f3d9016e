"""Unique jobs and rate-limited queues against both emulators (Pub/Sub and pubsub-jobs' Cloud
Tasks emulator): Cloud Tasks' task names refuse a unique job's second enqueue, a rate-limited
queue's jobs go through its own ``-rate`` Cloud Tasks queue, ``enqueue_many`` batches both,
and bootstrap makes the ``-rate`` queue with the declared rate. No timing is asserted."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from pubsub_jobs import Settings, queues
from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_client, tasks_queue_path
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.admin.topology import bootstrap
from pubsub_jobs.errors import BulkEnqueueError, ConfigurationError, EnqueueError
from pubsub_jobs.jobs import enqueue_many
from pubsub_jobs.testing import drain
from pubsub_jobs.worker import Worker
from tests import jobs_unique
from tests.jobs_unique import PACED, QUEUE, runs
from tests.waiting import wait_for


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def declare() -> Iterator[Callable[..., queues.Queue]]:
    """``declare("paced", rate_limit=5)``: a declaration forgotten after the test."""
    names: list[str] = []

    def make(name: str, **options: Any) -> queues.Queue:
        names.append(name)
        queues.declared_queues.remove(name)
        return queues.queue(name, **options)

    yield make
    for name in names:
        queues.declared_queues.remove(name)


@pytest.fixture
def tasks(delayed_jobs_settings: Settings) -> Iterator[Any]:
    """A Cloud Tasks client on the emulator."""
    client = cloud_tasks_client(delayed_jobs_settings)
    yield client
    client.transport.close()


@pytest.fixture
def unique_queue(bootstrap_queues, delayed_jobs_settings: Settings) -> Settings:
    bootstrap_queues(QUEUE, settings=delayed_jobs_settings)
    return delayed_jobs_settings


@pytest.fixture
def paced(bootstrap_queues, delayed_jobs_settings: Settings, declare) -> Settings:
    """Queue ``paced`` declared with rate_limit=5 and bootstrapped."""
    declare(PACED, rate_limit=5)
    bootstrap_queues(PACED, settings=delayed_jobs_settings)
    return delayed_jobs_settings


def _drain(settings: Settings, *names: str) -> None:
    """Run a worker until Cloud Tasks has published every job of ``names`` and they ran."""
    drain(*names, settings=settings, wait_for_delayed=True, idle=0.5)


def _window(job_id: str) -> int:
    return int(job_id.split("-")[1])


# --------------------------------------------------------------------- unique jobs


def test_a_unique_job_enqueued_twice_runs_once(unique_queue: Settings, tag: str) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    first = unique.enqueue(tag, 1)
    second = unique.enqueue(tag, 1)
    assert (first.duplicate, second.duplicate) == (False, True)
    assert second.job_id == first.job_id and first.message_id is None
    _drain(unique_queue, QUEUE)
    assert runs(tag) == [(first.job_id, 1)]
    # It ran and left Cloud Tasks: its name stays taken (tombstone), so still a duplicate.
    assert unique.enqueue(tag, 1).duplicate


def test_other_arguments_are_another_unique_job(unique_queue: Settings, tag: str) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    one, two = unique.enqueue(tag, 1), unique.enqueue(tag, 2)
    assert not one.duplicate and not two.duplicate and one.job_id != two.job_id
    _drain(unique_queue, QUEUE)
    assert sorted(runs(tag)) == sorted([(one.job_id, 1), (two.job_id, 2)])


def test_unique_key_makes_other_arguments_duplicates(unique_queue: Settings, tag: str) -> None:
    keyed = jobs_unique.remember.using(unique_for=timedelta(minutes=10), unique_key=tag)
    first, second = keyed.enqueue(tag, 1), keyed.enqueue(tag, 2)
    assert second.duplicate and second.job_id == first.job_id
    _drain(unique_queue, QUEUE)
    assert runs(tag) == [(first.job_id, 1)]


def test_windows_are_epoch_aligned_and_the_next_one_enqueues_again(
    unique_queue: Settings, tag: str
) -> None:
    """With a 2 s window: each result's window (in its job id) is floor(time / 2) of when it
    was enqueued; within one window every enqueue after the first is a duplicate; the next
    window's first is not. Read from the ids, not from a clock."""
    unique = jobs_unique.remember.using(unique_for=2)
    before = time.time()
    first = unique.enqueue(tag)
    after = time.time()
    assert math.floor(before / 2) <= _window(first.job_id) <= math.floor(after / 2)
    seen = [first]
    while _window(seen[-1].job_id) == _window(first.job_id):
        time.sleep(0.2)
        seen.append(unique.enqueue(tag))
    assert not first.duplicate and all(r.duplicate for r in seen[1:-1])
    assert {r.job_id for r in seen[1:-1]} <= {first.job_id}
    assert not seen[-1].duplicate and _window(seen[-1].job_id) > _window(first.job_id)
    _drain(unique_queue, QUEUE)
    assert sorted(runs(tag)) == sorted([(first.job_id, 0), (seen[-1].job_id, 0)])


def test_a_unique_delayed_job_waits_in_cloud_tasks(unique_queue: Settings, tasks, tag) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(hours=1), delay=timedelta(hours=1))
    first = unique.enqueue(tag)
    assert unique.enqueue(tag).duplicate
    held = [t.name for t in tasks.list_tasks(parent=tasks_queue_path(unique_queue, QUEUE))
            if first.job_id in t.name]
    assert len(held) == 1


def test_enqueue_many_of_unique_jobs_flags_each_duplicate(
    unique_queue: Settings, tag: str
) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    before = unique.enqueue(tag, 9)
    calls = [(tag, 1), (tag, 2), (tag, 1), (tag, 9), (tag, 3)]
    results = unique.enqueue_many(calls)
    assert [r.duplicate for r in results] == [False, False, True, True, False]
    assert results[2].job_id == results[0].job_id and results[3].job_id == before.job_id
    _drain(unique_queue, QUEUE)
    assert sorted(n for _, n in runs(tag)) == [1, 2, 3, 9]


def test_enqueue_many_without_batch_create_gives_the_same_answers(
    unique_queue: Settings, tag: str
) -> None:
    """The fallback for a server without BatchCreateTasks: concurrent CreateTask calls."""
    adapter = PubSubAdapter(unique_queue)
    try:
        adapter.scheduler().batch_create = False
        unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10), adapter=adapter)
        results = unique.enqueue_many([(tag, 1), (tag, 1), (tag, 2)])
        again = unique.enqueue_many([(tag, 2), (tag, 3)])
    finally:
        adapter.close()
    assert [r.duplicate for r in results + again] == [False, True, False, True, False]
    _drain(unique_queue, QUEUE)
    assert sorted(n for _, n in runs(tag)) == [1, 2, 3]


def test_many_unique_jobs_go_in_several_batches(unique_queue: Settings, tag: str) -> None:
    unique = jobs_unique.remember.using(unique_for=timedelta(minutes=10))
    results = unique.enqueue_many([(tag, n % 250) for n in range(300)])
    assert sum(not r.duplicate for r in results) == 250
    assert [r.duplicate for r in results[250:]] == [True] * 50
    _drain(unique_queue, QUEUE)
    assert sorted(n for _, n in runs(tag)) == list(range(250))


# --------------------------------------------------------------------- rate-limited queues


def test_bootstrap_makes_the_rate_queue_with_the_declared_rate(
    paced: Settings, tasks, declare
) -> None:
    path = tasks_queue_path(paced, PACED)
    assert path.endswith(f"/queues/{paced.prefix}{PACED}-rate")
    assert tasks.get_queue(name=path).rate_limits.max_dispatches_per_second == 5
    assert path in bootstrap([PACED], paced).existing

    declare(PACED, rate_limit=8)  # changed in code: bootstrap changes it in place
    report = bootstrap([PACED], paced)
    assert report.updated == [path]
    assert tasks.get_queue(name=path).rate_limits.max_dispatches_per_second == 8


def test_a_rate_limited_queues_jobs_go_through_its_cloud_tasks_queue(
    paced: Settings, tasks, tag: str
) -> None:
    path = tasks_queue_path(paced, PACED)
    tasks.pause_queue(name=path)  # hold them there, to see them
    results = jobs_unique.paced.enqueue_many([(tag, n) for n in range(8)])
    one = jobs_unique.paced.enqueue(tag, 8)
    delayed = jobs_unique.paced.using(delay=timedelta(seconds=1)).enqueue(tag, 9)
    assert all(r.message_id is None for r in [*results, one, delayed])
    held = [t.name for t in tasks.list_tasks(parent=path)]
    assert len(held) == 10
    assert all(any(r.job_id in name for name in held) for r in [*results, one, delayed])
    delayed_queue = tasks.list_tasks(parent=tasks_queue_path(paced, QUEUE))  # jobs-delayed
    assert not any(r.job_id in t.name for t in delayed_queue for r in [*results, one, delayed])
    worker = Worker([PACED], settings=paced)
    worker.start()
    try:
        assert runs(tag) == []  # nothing reached the topic while the queue was paused
        tasks.resume_queue(name=path)
        wait_for(lambda: len(runs(tag)) == 10, timeout=60, what="the paced jobs to run")
    finally:
        worker.stop()
    assert sorted(n for _, n in runs(tag)) == list(range(10))
    assert sorted(job_id for job_id, _ in runs(tag)) == sorted(
        r.job_id for r in [*results, one, delayed])


def test_without_cloud_tasks_a_rate_limited_enqueue_publishes_nothing(
    pubsub_jobs_settings: Settings, bootstrap_queues, declare, tag: str
) -> None:
    """Cloud Tasks not configured: enqueue_many of a plain job and a rate-limited one refuses
    with a sentence before anything is published, the plain one included."""
    declare(PACED, rate_limit=5)
    bootstrap_queues(QUEUE)
    messages = [jobs_unique.remember.message(tag, 1), jobs_unique.paced.message(tag, 2)]
    with pytest.raises(ConfigurationError, match=(
            "^delayed, unique and rate-limited jobs need a Cloud Tasks location: set "
            "PUBSUB_JOBS_CLOUD_TASKS_LOCATION")):
        enqueue_many(messages)
    drain(QUEUE, settings=pubsub_jobs_settings, idle=0.5)
    assert runs(tag) == []


def test_a_missing_rate_queue_says_how_to_create_it(
    delayed_jobs_settings: Settings, declare, tag: str
) -> None:
    """Declared rate-limited, but bootstrap never made its -rate queue: one enqueue and a
    bulk one both fail, naming the queue and the bootstrap that creates it."""
    declare(PACED, rate_limit=5)
    path = tasks_queue_path(delayed_jobs_settings, PACED)
    with pytest.raises(EnqueueError, match=f"^Cloud Tasks queue {path} does not exist .*"
                       "create it with `pubsub-jobs bootstrap"):
        jobs_unique.paced.enqueue(tag)
    with pytest.raises(BulkEnqueueError) as caught:
        jobs_unique.paced.enqueue_many([(tag, 1), (tag, 2)])
    assert str(caught.value).startswith(
        f"2 of 2 jobs were not scheduled; the first: Cloud Tasks queue {path} does not exist")
    assert caught.value.enqueued == [] and len(caught.value.failed) == 2
