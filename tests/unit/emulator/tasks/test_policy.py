"""The rate bucket and the retry policy of the Cloud Tasks emulator, on numbers alone."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest
from google.cloud import tasks_v2

from pubsub_jobs.emulator.tasks.names import ApiError
from pubsub_jobs.emulator.tasks.policy import (
    RetryPolicy,
    TokenBucket,
    burst_for,
    fill_queue_defaults,
    retry_policy,
)


def test_the_bucket_starts_full_spends_one_a_dispatch_and_refills_at_the_rate() -> None:
    bucket = TokenBucket(rate=2.0, capacity=3, now=100.0)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.next_token_in(100.0) == pytest.approx(0.5)
    assert not bucket.take(100.4)
    assert bucket.take(100.5)
    assert bucket.available(200.0) == 3  # never more than its capacity


def test_the_burst_follows_the_rate_between_1_and_500() -> None:
    assert [burst_for(r) for r in (0.5, 1, 2.5, 500)] == [1, 1, 3, 500]


def test_backoff_doubles_then_grows_linearly_up_to_max_backoff() -> None:
    """Cloud Tasks' own example: 10 s to 300 s, 3 doublings."""
    policy = RetryPolicy(min_backoff=10, max_backoff=300, max_doublings=3)
    assert [policy.backoff(n) for n in range(1, 10)] == [10, 20, 40, 80, 160, 240, 300, 300, 300]


def test_giving_up_needs_both_max_attempts_and_max_retry_duration() -> None:
    assert not RetryPolicy(max_attempts=3).gives_up(2, 0)
    assert RetryPolicy(max_attempts=3).gives_up(3, 0)
    assert not RetryPolicy(max_attempts=3, max_retry_duration=60).gives_up(3, 30)
    assert RetryPolicy(max_attempts=3, max_retry_duration=60).gives_up(3, 60)
    assert not RetryPolicy(max_attempts=-1).gives_up(10_000, 10**9)
    assert RetryPolicy(max_attempts=-1, max_retry_duration=60).gives_up(1, 61)


def test_a_task_retry_config_overrides_the_queue_field_by_field() -> None:
    queue = tasks_v2.RetryConfig(max_attempts=5, min_backoff=timedelta(seconds=2))
    task = tasks_v2.RetryConfig(max_attempts=2)
    assert retry_policy(queue, task) == RetryPolicy(max_attempts=2, min_backoff=2.0)
    assert retry_policy(tasks_v2.RetryConfig()) == RetryPolicy()


def test_a_queue_reads_back_with_cloud_tasks_defaults() -> None:
    queue = tasks_v2.Queue(name="projects/p/locations/l/queues/q")
    fill_queue_defaults(queue)
    assert queue.rate_limits.max_dispatches_per_second == 500
    assert queue.rate_limits.max_burst_size == 500
    assert queue.rate_limits.max_concurrent_dispatches == 1000
    assert queue.retry_config.max_attempts == 100
    assert queue.retry_config.min_backoff == timedelta(seconds=0.1)
    assert queue.retry_config.max_backoff == timedelta(hours=1)
    assert queue.retry_config.max_doublings == 16


@pytest.mark.parametrize("queue", [
    tasks_v2.Queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=501)),
    tasks_v2.Queue(rate_limits=tasks_v2.RateLimits(max_dispatches_per_second=-1)),
    tasks_v2.Queue(rate_limits=tasks_v2.RateLimits(max_concurrent_dispatches=5001)),
    tasks_v2.Queue(retry_config=tasks_v2.RetryConfig(max_attempts=-2)),
    tasks_v2.Queue(retry_config=tasks_v2.RetryConfig(
        min_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=1))),
])
def test_limits_beyond_cloud_tasks_bounds_are_invalid_argument(queue: tasks_v2.Queue) -> None:
    with pytest.raises(ApiError) as info:
        fill_queue_defaults(queue)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
