"""Jobs and helpers for the dead-set tests (tests/emulator/test_dead.py,
tests/emulator/test_cli_ops.py)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from google.api_core import exceptions as gexc
from google.pubsub_v1 import PublisherClient as GapicPublisherClient
from google.pubsub_v1 import PubsubMessage

from pubsub_jobs import Settings, job
from pubsub_jobs.adapters.clients import publisher_client, subscriber_client
from pubsub_jobs.jobs import Job, default_registry
from pubsub_jobs.message import JobMessage, format_time, utcnow

RAN: list[tuple[str, object]] = []
#: Keys whose jobs fail; a test clears it to "deploy the fix" before retrying.
BROKEN: set[str] = set()
_lock = threading.Lock()


def record(name: str, value: object) -> None:
    with _lock:
        RAN.append((name, value))


@job(queue="dead", max_attempts=1)
def fragile(key: str) -> None:
    """Dead-lettered as ``max_attempts`` at its first failure."""
    if key in BROKEN:
        raise RuntimeError(f"broken {key}")
    record("fragile", key)


@job(queue="dead", retry_on=(ConnectionError,))
def picky(key: str) -> None:
    """Dead-lettered as ``not_retryable`` when it fails."""
    if key in BROKEN:
        raise KeyError(key)
    record("picky", key)


@job(queue="dead")
def note(key: str) -> None:
    record("note", key)


@job(queue="dead")
def some_job(a: int, *, b: int = 0) -> None:
    """The job ``pubsub-jobs enqueue`` tests use."""
    record("some_job", a + b)


@job(name="tests.jobs_dead.lenient", queue="dead")
def lenient_v1(n: int) -> None:
    record("lenient_v1", n)


def lenient_v2(n: str) -> None:
    """The "fixed" lenient job: accepts what v1 refused."""
    record("lenient_v2", n)


def late(n: int) -> None:
    """Registered only by a test (as :data:`LATE_NAME`): until then, ``unknown_job``."""
    record("late", n)


LATE_NAME = "tests.jobs_dead.late"
LENIENT_NAME = "tests.jobs_dead.lenient"


@contextmanager
def deployed_fixes() -> Iterator[None]:
    """Register ``late`` and swap ``lenient`` for v2, as a deploy would; undone afterwards."""
    BROKEN.clear()
    default_registry.unregister(LENIENT_NAME)
    Job(late, name=LATE_NAME, queue="dead")
    Job(lenient_v2, name=LENIENT_NAME, queue="dead")
    try:
        yield
    finally:
        default_registry.unregister(LATE_NAME)
        default_registry.unregister(LENIENT_NAME)
        default_registry.register(lenient_v1)


def dead_copies(
    queue: str, settings: Settings, keys: list[str], *, reason: str = "max_attempts",
    duplicate: int = 0,
) -> list[str]:
    """Publish worker-style dead copies of ``note(key)`` jobs straight to the dead-letter
    topic (fast, no worker needed); the first ``duplicate`` jobs get a second copy. Returns
    the job ids, in order."""
    publisher = publisher_client(settings)
    topic = settings.dead_letter_topic_path(queue)
    job_ids = []
    futures = []
    try:
        for i, key in enumerate(keys):
            message = JobMessage(job_name=note.name, queue=queue, args=[key], kwargs={})
            data, attrs = message.encode()
            attrs.update(dead_letter_reason=reason, dead_letter_error=f"RuntimeError: {key}",
                         dead_lettered_at=format_time(utcnow()), delivery_attempt="5")
            job_ids.append(message.job_id)
            for _ in range(2 if i < duplicate else 1):
                futures.append(publisher.publish(topic, data, **attrs))
        for future in futures:
            future.result(timeout=30)
    finally:
        publisher.stop()
    return job_ids


def worker_copy(attributes: dict[str, str], *, error: str = "RuntimeError: x",
                reason: str = "max_attempts") -> dict[str, str]:
    """``attributes`` plus the dead-letter attributes the worker adds to its copy."""
    return {**attributes, "dead_letter_reason": reason, "dead_letter_error": error,
            "dead_lettered_at": format_time(utcnow()), "delivery_attempt": "5"}


def publish_dead(
    queue: str, settings: Settings, messages: list[tuple[bytes, dict[str, str]]]
) -> None:
    """Publish ``(data, attributes)`` messages as they are to the queue's dead-letter topic,
    in one request (attributes may have any name, even ``topic`` or ``ordering_key``)."""
    publisher = publisher_client(settings)
    try:
        GapicPublisherClient.publish(
            publisher, topic=settings.dead_letter_topic_path(queue), timeout=30,
            messages=[PubsubMessage(data=data, attributes=attrs) for data, attrs in messages],
        )
    finally:
        publisher.stop()


class Observer:
    """An extra subscription on a queue's topic that sees every message published to it,
    so a test can count republished jobs exactly (duplicates included)."""

    def __init__(self, queue: str, settings: Settings) -> None:
        self.settings = settings
        self.path = (f"projects/{settings.require_project()}/subscriptions/"
                     f"{settings.prefix}{queue}-observer-{uuid.uuid4().hex[:6]}")
        self.subscriber = subscriber_client(settings)
        self.subscriber.create_subscription(name=self.path, topic=settings.topic_path(queue),
                                            ack_deadline_seconds=60)

    def take(self, *, expect: int = 0, timeout: float = 15.0) -> list[dict[str, str]]:
        """Pull and ack everything there; wait up to ``timeout`` for ``expect`` messages.
        Returns their attributes."""
        return [attrs for _, attrs in self.take_messages(expect=expect, timeout=timeout)]

    def take_messages(
        self, *, expect: int = 0, timeout: float = 15.0
    ) -> list[tuple[bytes, dict[str, str]]]:
        """As :meth:`take`, returning ``(data, attributes)`` of each message."""
        found: list[tuple[bytes, dict[str, str]]] = []
        deadline = time.monotonic() + timeout
        while True:
            response = self.subscriber.pull(subscription=self.path, max_messages=1000,
                                            return_immediately=True)
            received = list(response.received_messages)
            if received:
                self.subscriber.acknowledge(subscription=self.path,
                                            ack_ids=[r.ack_id for r in received])
                found += [(r.message.data, dict(r.message.attributes)) for r in received]
                continue
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.1)

    def seen(self) -> bool:
        """Whether a message is waiting (it is handed back at once)."""
        response = self.subscriber.pull(subscription=self.path, max_messages=1,
                                        return_immediately=True)
        received = list(response.received_messages)
        if received:
            self.subscriber.modify_ack_deadline(subscription=self.path,
                                                ack_ids=[r.ack_id for r in received],
                                                ack_deadline_seconds=0)
        return bool(received)

    def close(self) -> None:
        try:
            self.subscriber.delete_subscription(subscription=self.path)
        except gexc.NotFound:
            pass
        self.subscriber.close()


def nack_until_forwarded(queue: str, settings: Settings, deliveries: int) -> int:
    """Pull the queue's worker subscription and nack what comes, as a worker crashing each
    time would, until Pub/Sub's own dead-letter policy forwards the message to the
    dead-letter subscription (the emulator does so at the delivery after the last allowed
    one, so keep pulling). Returns the deliveries seen."""
    subscriber = subscriber_client(settings)
    path = settings.subscription_path(queue)
    dead_path = settings.dead_letter_subscription_path(queue)
    seen = 0
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            response = subscriber.pull(subscription=path, max_messages=10,
                                       return_immediately=True)
            received = list(response.received_messages)
            if received:
                seen += len(received)
                subscriber.modify_ack_deadline(subscription=path,
                                               ack_ids=[r.ack_id for r in received],
                                               ack_deadline_seconds=0)
                continue
            if seen >= deliveries:
                peek = subscriber.pull(subscription=dead_path, max_messages=1,
                                       return_immediately=True)
                if peek.received_messages:
                    subscriber.modify_ack_deadline(
                        subscription=dead_path,
                        ack_ids=[r.ack_id for r in peek.received_messages],
                        ack_deadline_seconds=0)
                    return seen
            time.sleep(0.05)
    finally:
        subscriber.close()
    return seen
