"""Waiting until Pub/Sub confirmed every message a peer published, as the raw client's
enqueue waits on every future.

dramatiq-gcpubsub's broker and kombu's gcpubsub transport call ``PublisherClient.publish``
and drop the futures it returns. ``PublisherClient.stop()`` does not wait either: it hands
the last batches to daemon threads, and a process that exits then loses them (the headline
once lost 29 of 20,000 dramatiq jobs that way, so its worker waited for jobs that were never
published). Runs inside the peers' virtualenvs: imports only the client.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any


def record_publishes() -> list[Future[Any]]:
    """From now on every ``PublisherClient.publish`` of this process adds its future to the
    list returned; the peer's own code is left as it is."""
    from google.cloud.pubsub_v1 import PublisherClient

    futures: list[Future[Any]] = []
    publish = PublisherClient.publish

    def recording(self: PublisherClient, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = publish(self, *args, **kwargs)
        futures.append(future)
        return future

    PublisherClient.publish = recording
    return futures


def wait_confirmed(futures: list[Future[Any]], timeout: float = 300) -> None:
    """Every recorded publish confirmed (its message id back), or the publish's error."""
    for future in futures:
        future.result(timeout=timeout)
