"""How a dashboard hears the workers' heartbeats: a subscription of its own, for its lifetime.

:meth:`HeartbeatListener.start` creates ``<prefix>workers-dashboard-<random>`` on the
heartbeat topic (:meth:`Settings.workers_topic_path`) and pulls it with a streaming pull;
:meth:`HeartbeatListener.close` deletes it. A dashboard that dies without closing leaves it
behind for Pub/Sub to delete: it expires after :data:`EXPIRES_AFTER` without a pull, and
keeps unread beats :data:`RETENTION` at most. Each beat goes to the
:class:`~pubsub_jobs.dashboard.workers.WorkerBoard` and is acknowledged, whatever it holds.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.dashboard.workers import WorkerBoard
from pubsub_jobs.errors import describe
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker.heartbeat import KIND

__all__ = ["EXPIRES_AFTER", "RETENTION", "RETRY_SECONDS", "HeartbeatListener"]

log = logging.getLogger(__name__)

#: Pub/Sub's shortest expiration: an abandoned subscription is deleted a day after its last pull.
EXPIRES_AFTER = timedelta(days=1)
#: Pub/Sub's shortest retention: beats nobody read are dropped after it.
RETENTION = timedelta(minutes=10)
#: Seconds between two tries to listen again after a failure.
RETRY_SECONDS = 10.0


class HeartbeatListener:
    """A short-lived subscription on the heartbeat topic that feeds ``board``."""

    def __init__(self, settings: Settings, board: WorkerBoard) -> None:
        self.settings = settings
        self.board = board
        project = settings.require_project()
        self.topic = settings.workers_topic_path()
        self.subscription = (f"projects/{project}/subscriptions/{settings.prefix}workers-"
                             f"dashboard-{uuid.uuid4().hex[:12]}")
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._future: Any = None
        self._error: str | None = None
        self._created = False
        self._tried = 0.0
        self._lock = threading.Lock()

    @property
    def error(self) -> str | None:
        """Why workers cannot be seen (no heartbeat topic, a failed stream), or None."""
        future = self._future
        if self._error is None and future is not None and future.done():
            exc = future.exception() if not future.cancelled() else None
            self._error = ("the heartbeat stream ended"
                           + (f": {describe(exc)}" if exc is not None else ""))
        return self._error

    def start(self) -> HeartbeatListener:
        """Create the subscription and start pulling; a failure is kept in :attr:`error`
        (the page shows it) rather than raised, so queues and dead sets still work, and
        :meth:`ensure` tries again later."""
        with self._lock:
            if self._subscriber is None:
                self._subscriber = subscriber_client(self.settings)
            subscriber = self._subscriber
            self._tried = time.monotonic()
            ended = self._future
            if ended is not None and not ended.done():
                return self
            if ended is not None and not ended.cancelled() and \
                    isinstance(ended.exception(), gexc.NotFound):
                self._created = False  # the subscription expired or was deleted: make it again
            try:
                if not self._created:
                    self._create(subscriber)
            except Exception as exc:
                self._error = (
                    f"the heartbeat topic {self.topic} does not exist: run `pubsub-jobs "
                    "bootstrap` (or Terraform)" if isinstance(exc, gexc.NotFound)
                    else f"cannot subscribe to the workers' heartbeats: {describe(exc)}")
                log.warning("%s", self._error)
                return self
            self._error = None
            self.board.listening_since = time.monotonic()
            self._future = subscriber.subscribe(
                self.subscription, callback=self._on_message,
                flow_control=pubsub_v1.types.FlowControl(max_messages=1000),
            )
        log.info("listening to worker heartbeats on %s", self.subscription)
        return self

    def ensure(self) -> None:
        """Start again when not listening (the topic was missing, the stream ended), at
        most every :data:`RETRY_SECONDS`; the pages call it."""
        future = self._future
        if (future is None or future.done()) and self._subscriber is not None and \
                time.monotonic() - self._tried >= RETRY_SECONDS:
            self.start()

    def _create(self, subscriber: pubsub_v1.SubscriberClient) -> None:
        try:
            subscriber.create_subscription(request=pubsub_v1.types.Subscription(
                name=self.subscription,
                topic=self.topic,
                ack_deadline_seconds=10,
                message_retention_duration=RETENTION,
                expiration_policy=pubsub_v1.types.ExpirationPolicy(ttl=EXPIRES_AFTER),
                filter=f'attributes.kind = "{KIND}"',
            ))
        except gexc.AlreadyExists:
            pass
        self._created = True

    def close(self) -> None:
        """Stop pulling and delete the subscription (idempotent)."""
        with self._lock:
            subscriber, self._subscriber = self._subscriber, None
            future, self._future = self._future, None
        if subscriber is None:
            return
        try:
            if future is not None:
                future.cancel()
                try:
                    future.result(timeout=10)
                except Exception as exc:
                    log.debug("heartbeat stream ended with %s", describe(exc))
            if self._created:
                try:
                    subscriber.delete_subscription(subscription=self.subscription)
                except Exception as exc:
                    log.warning("could not delete %s (it expires by itself): %s",
                                self.subscription, describe(exc))
        finally:
            subscriber.close()

    def _on_message(self, message: Message) -> None:
        try:
            self.board.receive(message.data)
        finally:
            message.ack()
