"""Where the pull worker and the push endpoint store what an outcome needs: Pub/Sub for
dead-letter copies and continuations, Cloud Tasks for rescheduled jobs.

:func:`pubsub_jobs.delivery.settle` decides what to store and logs a failure;
:class:`PubSubStore` only stores, and raises when a copy is not confirmed.
"""

from __future__ import annotations

from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.message import JobMessage
from pubsub_jobs.settings import Settings


class PubSubStore:
    """A :class:`~pubsub_jobs.delivery.DeliveryStore` on Pub/Sub and Cloud Tasks."""

    def __init__(self, adapter: PubSubAdapter, settings: Settings) -> None:
        self.adapter = adapter
        self.settings = settings

    def store_dead_letter(self, queue: str, data: bytes, attributes: dict[str, str]) -> None:
        """Publish the copy to ``queue``'s dead-letter topic; returns once Pub/Sub confirmed
        it."""
        topic = self.settings.dead_letter_topic_path(queue)
        self.adapter.publish_raw(topic, data, attributes).result(
            timeout=self.settings.publish_timeout
        )

    def store_scheduled(self, message: JobMessage) -> None:
        """Hold the job in Cloud Tasks; returns once Cloud Tasks confirmed it."""
        self.adapter.schedule(message)

    def store_published(self, message: JobMessage) -> None:
        """Publish the job to its queue; returns once Pub/Sub confirmed it."""
        self.adapter.publish(message)
