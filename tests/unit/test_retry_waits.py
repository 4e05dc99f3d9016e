"""Long-wait retries on the in-memory adapter: ``retry_wait`` and ``Retry(delay=...)``
reschedule, count toward ``max_attempts`` and respect ``retry_on`` (against both emulators:
tests/emulator/test_delayed.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from pubsub_jobs import InMemoryAdapter
from pubsub_jobs.message import utcnow
from pubsub_jobs.outcome import PREVIOUS_ATTEMPTS, Action, Reason
from tests import jobs_delayed
from tests.jobs_delayed import QUEUE, runs


@pytest.fixture
def tag() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------- the retry policy


def test_retry_wait_reschedules_and_counts_toward_max_attempts(tag: str) -> None:
    adapter = InMemoryAdapter()
    jobs_delayed.always_fails_later.using(adapter=adapter).enqueue(tag)

    summary = adapter.run()
    [outcome] = summary.outcomes
    assert (outcome.action, outcome.reason) == (Action.RESCHEDULE, Reason.RETRY)
    assert outcome.delay == timedelta(seconds=2) and outcome.attempt == 1
    [held] = adapter.scheduled
    assert held.attributes[PREVIOUS_ATTEMPTS] == "1"
    assert held.job.scheduled_at is not None and held.job.scheduled_at > utcnow()

    summary = adapter.run(include_delayed=True)
    assert [o.action for o in summary.outcomes] == [Action.DEAD_LETTER]
    [dead] = adapter.dead_jobs(QUEUE)
    assert (dead.reason, dead.attempts) == ("max_attempts", 2)
    assert [r.attempt for r in runs(tag)] == [1, 2]


def test_retry_wait_may_depend_on_the_attempt_and_respects_retry_on() -> None:
    adapter = InMemoryAdapter()
    job = jobs_delayed.waits_longer_each_time.using(adapter=adapter)
    job.enqueue("slow")
    job.enqueue("fatal")
    outcomes = adapter.run().outcomes
    assert [(o.action, o.delay) for o in outcomes] == [
        (Action.RESCHEDULE, timedelta(seconds=60)),
        (Action.DEAD_LETTER, None),
    ]
    assert outcomes[1].reason is Reason.NOT_RETRYABLE
    outcomes = adapter.run(include_delayed=True, max_jobs=1).outcomes
    assert outcomes[0].delay == timedelta(seconds=120)


def test_retry_exception_without_delay_is_a_plain_nack(tag: str) -> None:
    adapter = InMemoryAdapter()
    jobs_delayed.retry_without_delay.using(adapter=adapter).enqueue(tag)
    summary = adapter.run(max_jobs=1)
    assert [o.action for o in summary.outcomes] == [Action.NACK]
    assert adapter.scheduled == []


def test_retry_exception_with_delay_reschedules(tag: str) -> None:
    adapter = InMemoryAdapter()
    jobs_delayed.asks_to_retry_once.using(adapter=adapter).enqueue(tag)
    assert [o.action for o in adapter.run().outcomes] == [Action.RESCHEDULE]
    assert [o.action for o in adapter.run(include_delayed=True).outcomes] == [Action.ACK]
    assert [r.attempt for r in runs(tag)] == [1, 2]
