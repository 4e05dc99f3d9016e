"""Ordered jobs on the emulator: a real ordered subscription (bootstrap of a queue declared
``ordered=True``), the worker's retries in place, its put-back, and the dead-letter policy
spent by a failing job's own attempts only."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from pubsub_jobs import Settings, enqueue_many
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.admin.topology import BootstrapReport, bootstrap, delete_topology
from pubsub_jobs.dead.job import DeadJob
from pubsub_jobs.push.server import PushServer
from pubsub_jobs.settings import configure
from pubsub_jobs.worker import Worker
from tests import jobs_ordered
from tests.jobs_ordered import QUEUE, doomed, flaky, runs, step, waits_long
from tests.waiting import wait_for


@pytest.fixture
def ordered(bootstrap_queues: Callable[..., BootstrapReport],
            pubsub_jobs_settings: Settings) -> Iterator[Settings]:
    """Queue ``ordered`` bootstrapped (its worker subscription with message ordering)."""
    bootstrap_queues(QUEUE)
    jobs_ordered.reset()
    yield pubsub_jobs_settings
    jobs_ordered.reset()


def test_each_key_runs_in_order_one_at_a_time_across_two_workers(
    ordered: Settings, drain_queues: Callable[..., Worker],
) -> None:
    keys, per_key = ["k1", "k2", "k3"], 15
    enqueue_many([step.using(ordering_key=key).message(key, n, 0.01)
                  for n in range(per_key) for key in keys])
    workers: list[Worker] = []

    def drain() -> None:
        workers.append(drain_queues(f"{QUEUE}=4", idle=3.0, timeout=120))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    assert len(workers) == 2
    for key in keys:
        assert runs(key) == [("step", n, 1) for n in range(per_key)]
        assert jobs_ordered.MOST_AT_ONCE[key] == 1
    assert sum(w.stats.processed for w in workers) == len(keys) * per_key
    assert sum(w.stats.put_back for w in workers) == 0


def test_a_job_that_fails_once_is_retried_in_place_and_keeps_its_key_in_order(
    ordered: Settings, drain_queues: Callable[..., Worker],
    dead_letters: Callable[..., list[DeadJob]],
) -> None:
    enqueue_many([
        step.using(ordering_key="a").message("a", 0),
        flaky.using(ordering_key="a").message("a", 1),
        step.using(ordering_key="b").message("b", 0),
        step.using(ordering_key="a").message("a", 2),
        step.using(ordering_key="b").message("b", 1),
        step.using(ordering_key="a").message("a", 3),
    ])
    worker = drain_queues(f"{QUEUE}=4", idle=3.0, timeout=120)
    assert runs("a") == [("step", 0, 1), ("flaky", 1, 1), ("flaky", 1, 2), ("step", 2, 1),
                         ("step", 3, 1)]
    assert runs("b") == [("step", 0, 1), ("step", 1, 1)]
    stats = worker.stats
    assert (stats.failed, stats.retried, stats.succeeded, stats.put_back) == (1, 1, 6, 0)
    assert dead_letters(QUEUE) == []


def test_a_long_retry_wait_is_waited_in_place_and_a_stop_ends_it(
    ordered: Settings, drain_queues: Callable[..., Worker],
) -> None:
    """``retry_wait=3600`` would reschedule through Cloud Tasks (none is configured here):
    a job of a key waits in the worker instead, until a stop ends the wait and nacks it."""
    enqueue_many([waits_long.using(ordering_key="a").message("a", 0),
                  step.using(ordering_key="a").message("a", 1)])
    first = Worker([f"{QUEUE}=2"], settings=ordered, shutdown_timeout=30, lease_seconds=10)
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        wait_for(lambda: runs("a"), timeout=60, what="the first attempt")
    finally:
        first.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert runs("a") == [("waits_long", 0, 1)]
    assert (first.stats.rescheduled, first.stats.not_stored, first.stats.succeeded) == (0, 0, 0)
    # Both come back: the nacked job, and the one the client held behind it when its lease
    # ends (on a stop the client hands back only messages it has not sorted by key); the
    # order between them is then the emulator's (see docs/ordered-jobs.md).
    second = drain_queues(f"{QUEUE}=2", idle=20.0, timeout=120)
    assert {run[:2] for run in runs("a")[1:]} == {("waits_long", 0), ("step", 1)}
    assert second.stats.rescheduled == 0 and second.stats.failed == 0


def test_an_always_failing_job_is_dead_lettered_after_its_own_attempts_then_its_key_moves_on(
    ordered: Settings, drain_queues: Callable[..., Worker],
    dead_letters: Callable[..., list[DeadJob]],
) -> None:
    enqueue_many([
        step.using(ordering_key="a").message("a", 0),
        doomed.using(ordering_key="a").message("a", 1),
        step.using(ordering_key="a").message("a", 2),
        step.using(ordering_key="b").message("b", 0),
    ])
    worker = drain_queues(f"{QUEUE}=4", idle=3.0, timeout=120)
    assert runs("a") == [("step", 0, 1), *[("doomed", 1, n) for n in range(1, 6)],
                         ("step", 2, 1)]
    assert runs("b") == [("step", 0, 1)]
    [dead] = dead_letters(QUEUE, expect=1)
    assert (dead.job_name, dead.reason, dead.attempts) == (doomed.name, "max_attempts", 5)
    assert (worker.stats.dead_lettered, worker.stats.retried, worker.stats.put_back) == (1, 4, 0)


def test_a_nacked_message_puts_its_key_back_until_it_comes_back(
    ordered: Settings, drain_queues: Callable[..., Worker],
) -> None:
    """An unexpected error (here a middleware's) nacks a message: the client hands out the
    key's next messages at once, and the worker nacks them unstarted until the nacked one is
    delivered again, so the key still runs in order."""
    messages = [step.using(ordering_key="a").message("a", n) for n in range(5)]
    fails = jobs_ordered.FailsOnce(messages[1].job_id)
    enqueue_many(messages)
    worker = drain_queues(f"{QUEUE}=4", idle=3.0, timeout=120, middleware=[fails])
    assert fails.raised.is_set()
    assert [n for _, n, _ in runs("a")] == [0, 1, 2, 3, 4]
    assert worker.stats.errors == 1
    assert worker.stats.put_back >= 1


@pytest.fixture
def push_ordered(pubsub_jobs_settings: Settings) -> Iterator[PushServer]:
    """Queue ``ordered`` as an ordered push subscription to a push server on 127.0.0.1."""
    settings = configure(**{**pubsub_jobs_settings.model_dump(), "push_auth": "none"})
    jobs_ordered.reset()
    server = PushServer([QUEUE], port=0, settings=settings).start()
    try:
        bootstrap([QUEUE], settings, push_endpoint=server.url)
        try:
            yield server
        finally:
            delete_topology([QUEUE], settings)
    finally:
        server.stop()
        jobs_ordered.reset()


def test_push_delivers_a_key_in_order_and_a_failed_job_blocks_it_until_it_succeeds(
    push_ordered: PushServer,
) -> None:
    subscriber = subscriber_client(push_ordered.handler.settings)
    try:
        sub = subscriber.get_subscription(
            subscription=push_ordered.handler.settings.subscription_path(QUEUE))
    finally:
        subscriber.close()
    assert sub.enable_message_ordering and sub.push_config.push_endpoint
    enqueue_many([
        step.using(ordering_key="a").message("a", 0, 0.05),
        waits_long.using(ordering_key="a").message("a", 1),
        step.using(ordering_key="a").message("a", 2, 0.05),
        step.using(ordering_key="b").message("b", 0, 0.05),
        step.using(ordering_key="a").message("a", 3, 0.05),
    ])
    wait_for(lambda: len(runs("a")) >= 5 and runs("b"), timeout=120, what="every push")
    assert runs("a") == [("step", 0, 1), ("waits_long", 1, 1), ("waits_long", 1, 2),
                         ("step", 2, 1), ("step", 3, 1)]
    assert jobs_ordered.MOST_AT_ONCE["a"] == 1
    stats = push_ordered.handler.stats
    assert stats.rescheduled == 0 and stats.retried == 1


def test_a_delayed_job_with_a_key_takes_its_place_when_cloud_tasks_publishes_it(
    bootstrap_queues: Callable[..., BootstrapReport], delayed_jobs_settings: Settings,
    drain_queues: Callable[..., Worker],
) -> None:
    """Cloud Tasks (our emulator) publishes the delayed job with its ``orderingKey`` through
    the Pub/Sub REST API; it runs behind the job of its key published before it."""
    bootstrap_queues(QUEUE, settings=delayed_jobs_settings)
    jobs_ordered.reset()
    step.using(ordering_key="a", delay=1).enqueue("a", 0)
    step.using(ordering_key="a").enqueue("a", 1)
    drain_queues(f"{QUEUE}=2", wait_for_delayed=True, idle=3.0, timeout=120)
    assert runs("a") == [("step", 1, 1), ("step", 0, 1)]
    subscriber = subscriber_client(delayed_jobs_settings)
    try:  # one more published the same way, pulled raw: it carries its ordering key
        step.using(ordering_key="b", delay=0.5).enqueue("b", 0)
        path = delayed_jobs_settings.subscription_path(QUEUE)
        received = wait_for(lambda: subscriber.pull(
            subscription=path, max_messages=1, return_immediately=True,
            timeout=10).received_messages, timeout=60, what="the delayed message")
        assert received[0].message.ordering_key == "b"
        subscriber.acknowledge(subscription=path, ack_ids=[received[0].ack_id])
    finally:
        subscriber.close()
