"""Fixtures of the emulator tests of delayed jobs (queue ``tests.jobs_delayed.QUEUE``): its
topology on both emulators, and a worker running on it. A test module may define its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from pubsub_jobs import Settings
from pubsub_jobs.worker import Worker
from tests.jobs_delayed import QUEUE


@pytest.fixture
def delayed(
    bootstrap_queues: Callable[..., object], delayed_jobs_settings: Settings
) -> Settings:
    """The delayed-jobs settings, with the queue's topic and subscriptions made."""
    bootstrap_queues(QUEUE, settings=delayed_jobs_settings)
    return delayed_jobs_settings


@pytest.fixture
def worker(delayed: Settings) -> Iterator[Worker]:
    """A worker on the delayed queue, running in the background for the whole test."""
    w = Worker([QUEUE], settings=delayed)
    w.start()
    yield w
    w.stop()
