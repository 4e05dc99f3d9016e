"""Functions behind the pytest fixtures, usable from any test runner."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

from pubsub_jobs.adapters.clients import publisher_client
from pubsub_jobs.dead.job import DeadJob, sort_dead
from pubsub_jobs.dead.subscription import DeadSet
from pubsub_jobs.settings import Settings, get_settings
from pubsub_jobs.worker import QueueSpec, Worker


def drain(
    *queues: str | QueueSpec,
    settings: Settings | None = None,
    idle: float = 2.0,
    timeout: float = 60.0,
    wait_for_delayed: bool = False,
    **worker_options: Any,
) -> Worker:
    """Run a burst worker on ``queues`` until nothing has run or arrived for ``idle`` seconds;
    returns it (see ``.stats``). ``worker_options`` go to :class:`~pubsub_jobs.worker.Worker`.

    With ``wait_for_delayed``, first until Cloud Tasks holds no delayed job (``using(delay=
    ...)``, long-wait retries) for these queues, then until idle (see
    :func:`pubsub_jobs.testing.delayed.drain_with_delayed`).

    Raises ``TimeoutError`` if the queues are still busy after ``timeout`` seconds (at once,
    with ``wait_for_delayed``, when a delayed job is due after that).
    """
    if wait_for_delayed:
        from pubsub_jobs.testing.delayed import drain_with_delayed

        return drain_with_delayed(queues, settings or get_settings(), idle=idle,
                                  timeout=timeout, **worker_options)
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
) -> list[DeadJob]:
    """Take (pull and ack) the messages in a queue's dead-letter subscription, oldest first.

    Waits up to ``timeout`` for at least ``expect`` of them (the subscription's own
    dead-letter policy forwards messages asynchronously). Messages Pub/Sub forwarded itself
    have the derived reason ``delivery_limit`` (see :class:`DeadJob`).
    """
    found: list[DeadJob] = []
    deadline = time.monotonic() + timeout
    with DeadSet(queue, settings or get_settings()) as dead:
        while True:
            found += dead.take()
            if len(found) >= expect or time.monotonic() > deadline:
                return sort_dead(found)
            time.sleep(0.2)


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


