"""Ordered jobs on the emulator: a real ordered subscription (bootstrap of a queue declared
``ordered=True``), the worker's retries in place, its put-back, and the dead-letter policy
spent by a failing job's own attempts only."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from pubsub_jobs import Settings, enqueue_many
from pubsub_jobs.admin.topology import BootstrapReport
from pubsub_jobs.dead.job import DeadJob
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


def test_a_long_retry_wait_is_waited_in_place_and_a_stop_puts_the_key_back(
    ordered: Settings, drain_queues: Callable[..., Worker],
) -> None:
    """``retry_wait=3600`` would reschedule through Cloud Tasks (none is configured here):
    a job of a key waits in the worker instead, until a stop ends the wait; the message is
    nacked, and the next worker runs it before the key's next job."""
    enqueue_many([waits_long.using(ordering_key="a").message("a", 0),
                  step.using(ordering_key="a").message("a", 1)])
    first = Worker([f"{QUEUE}=2"], settings=ordered, shutdown_timeout=30, lease_seconds=10)
    thread = threading.Thread(target=first.run)
    thread.start()
    try:
        wait_for(lambda: runs("a"), timeout=60, what="the first attempt")
        wait_for(lambda: first.stats.in_flight == 1, timeout=10, what="the wait in place")
    finally:
        first.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert runs("a") == [("waits_long", 0, 1)]
    assert (first.stats.rescheduled, first.stats.not_stored, first.stats.succeeded) == (0, 0, 0)
    # The job held behind it in the client comes back when its lease ends (lease_seconds):
    # on a stop the client hands back only the messages it has not sorted by key yet.
    second = drain_queues(f"{QUEUE}=2", idle=20.0, timeout=120)
    # Pub/Sub counted the nacked delivery: the second run is attempt 2 (see the docs); the
    # expired lease counts for the held job too, and the emulator may deliver the key's
    # first job once more then (at least once): the order of first runs is what holds.
    seen = runs("a")
    assert seen[:2] == [("waits_long", 0, 1), ("waits_long", 0, 2)]
    assert seen[2][:2] == ("step", 1)
    assert second.stats.rescheduled == 0


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
