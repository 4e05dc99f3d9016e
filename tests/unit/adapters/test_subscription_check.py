"""Whether a worker acks a queue with Pub/Sub's answer: what the subscription says when it
was read, else what the queue's declaration says."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from pubsub_jobs import queues
from pubsub_jobs.adapters.subscriptions import SubscriptionCheck
from pubsub_jobs.queues import queue


@pytest.fixture
def payments() -> Iterator[None]:
    queues.declared_queues.remove("payments")
    queue("payments", exactly_once=True)
    yield
    queues.declared_queues.remove("payments")


@pytest.mark.usefixtures("payments")
def test_the_subscription_read_decides() -> None:
    made_without = pubsub_v1.types.Subscription(enable_exactly_once_delivery=False)
    assert SubscriptionCheck("payments", "p", subscription=made_without).exactly_once is False
    made_with = pubsub_v1.types.Subscription(enable_exactly_once_delivery=True)
    assert SubscriptionCheck("plain", "p", subscription=made_with).exactly_once is True


@pytest.mark.usefixtures("payments")
def test_unread_the_declaration_decides() -> None:
    assert SubscriptionCheck("payments", "p").exactly_once is True
    assert SubscriptionCheck("plain", "p").exactly_once is False
