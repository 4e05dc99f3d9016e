"""``/status`` shows what each queue's declaration in code says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pubsub_jobs import queues
from pubsub_jobs.delivery import DeliveryStats
from pubsub_jobs.queues import queue
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker.health import worker_status
from pubsub_jobs.worker.options import QueueSpec


@pytest.fixture
def billing() -> Iterator[None]:
    queue("billing", ordered=True, exactly_once=True, rate_limit=20)
    yield
    queues.declared_queues.remove("billing")


@pytest.mark.usefixtures("billing")
def test_status_shows_declared_ordering_and_exactly_once() -> None:
    status = worker_status(
        DeliveryStats(), queues=[QueueSpec(name="billing"), QueueSpec(name="plain")],
        settings=Settings(project_id="p"), stuck_after=60, streams_running={}, failures=[],
        subscription_limits={},
    )
    billing, plain = status["queues"]
    assert (billing["declared"], billing["ordered"], billing["exactly_once"],
            billing["rate_limit"]) == (True, True, True, 20.0)
    assert (plain["declared"], plain["ordered"], plain["exactly_once"],
            plain["rate_limit"]) == (False, False, False, None)
