"""Functions behind the pytest fixtures, usable from any test runner."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pubsub_jobs._clients import publisher_client, subscriber_client
from pubsub_jobs.settings import Settings, get_settings
from pubsub_jobs.worker.runner import QueueSpec, Worker


@dataclass(frozen=True)
class DeadLetter:
    """A message taken from a queue's dead-letter subscription."""

    data: bytes
    attributes: dict[str, str]

    @property
    def reason(self) -> str | None:
        return self.attributes.get("dead_letter_reason")

    @property
    def job_id(self) -> str | None:
        return self.attributes.get("job_id")

    def json(self) -> Any:
        return json.loads(self.data)


def drain(
    *queues: str | QueueSpec,
    settings: Settings | None = None,
    idle: float = 2.0,
    timeout: float = 60.0,
    **worker_options: Any,
) -> Worker:
    """Run a burst worker on ``queues`` until they are idle; returns it (see ``.stats``).

    Raises ``TimeoutError`` if jobs keep arriving for longer than ``timeout`` seconds.
    """
    worker = Worker(list(queues), settings=settings, burst=True, burst_idle=idle,
                    **worker_options)
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        worker.request_stop()

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        worker.run()
    finally:
        timer.cancel()
    if worker.error is not None:
        raise RuntimeError(str(worker.error))
    if timed_out.is_set():
        raise TimeoutError(f"queues {queues} were still busy after {timeout:g} s")
    return worker


def pull_dead_letters(
    queue: str,
    settings: Settings | None = None,
    *,
    expect: int = 0,
    timeout: float = 15.0,
) -> list[DeadLetter]:
    """Take (pull and ack) the messages in a queue's dead-letter subscription.

    Waits up to ``timeout`` for at least ``expect`` of them (the subscription's own
    dead-letter policy forwards messages asynchronously).
    """
    settings = settings or get_settings()
    path = settings.dead_letter_subscription_path(queue)
    subscriber = subscriber_client(settings)
    found: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            response = subscriber.pull(
                subscription=path, max_messages=100, return_immediately=True
            )
            received = list(response.received_messages)
            if received:
                subscriber.acknowledge(subscription=path,
                                       ack_ids=[r.ack_id for r in received])
                found += [DeadLetter(r.message.data, dict(r.message.attributes))
                          for r in received]
                continue
            if len(found) >= expect or time.monotonic() > deadline:
                return found
            time.sleep(0.2)
    finally:
        subscriber.close()


def publish_raw(
    queue: str,
    data: bytes,
    attributes: Mapping[str, str] | None = None,
    settings: Settings | None = None,
) -> str:
    """Publish a message as it is to a queue's topic (to test malformed input)."""
    settings = settings or get_settings()
    publisher = publisher_client(settings)
    try:
        future = publisher.publish(settings.topic_path(queue), data, **dict(attributes or {}))
        message_id: str = future.result(timeout=30)
        return message_id
    finally:
        publisher.stop()


