"""Shared fixtures: the pubsub_jobs pytest plugin (loaded by its entry point) does the rest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import jobs_core


@pytest.fixture
def ran() -> Iterator[list[tuple[str, object]]]:
    """What the jobs of tests/jobs_core.py recorded during the test."""
    jobs_core.RAN.clear()
    yield jobs_core.RAN
    jobs_core.RAN.clear()


@pytest.fixture
def observers(pubsub_jobs_settings):  # type: ignore[no-untyped-def]
    """Observer subscriptions (tests/jobs_dead.py) made by a test, closed after it."""
    made: list = []
    yield made
    for observer in made:
        observer.close()
