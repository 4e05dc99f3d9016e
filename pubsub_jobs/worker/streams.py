"""The streaming pulls of a worker: opened on the official client, cancelled in order.

Each queue gets ``QueueSpec.streams`` streams (``SubscriberClient.subscribe``), each with
its own threads (:mod:`.threads`) and ``FlowControl``, so concurrency and memory stay bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from pubsub_jobs.errors import StreamFailed, describe
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker.options import QueueSpec, WorkerOptions
from pubsub_jobs.worker.threads import JobThreads

log = logging.getLogger(__name__)


class Streams:
    """Every stream of a worker, with the queue each one pulls."""

    def __init__(self, subscriber: pubsub_v1.SubscriberClient, settings: Settings,
                 options: WorkerOptions) -> None:
        self.subscriber = subscriber
        self.settings = settings
        self.options = options
        self._streams: list[tuple[str, Any]] = []

    def open(self, queues: Sequence[QueueSpec],
             callback: Callable[[str], Callable[[Message], None]]) -> None:
        """Open each queue's streams; ``callback(queue)`` gives its message handler."""
        for spec in queues:
            path = self.settings.subscription_path(spec.name)
            per_stream = -(-spec.concurrency // spec.streams)
            for _ in range(spec.streams):
                future = self.subscriber.subscribe(
                    path,
                    callback=callback(spec.name),
                    flow_control=pubsub_v1.types.FlowControl(
                        max_messages=per_stream + self.options.prefetch,
                        max_lease_duration=self.options.max_lease_duration,
                        min_duration_per_lease_extension=self.options.lease_seconds,
                        max_duration_per_lease_extension=self.options.lease_seconds,
                    ),
                    scheduler=JobThreads(per_stream, f"pubsub-jobs-{spec.name}"),
                    await_callbacks_on_shutdown=True,
                )
                self._streams.append((spec.name, future))

    def running(self) -> dict[str, int]:
        """Streams still pulling, by queue."""
        counts: dict[str, int] = {}
        for queue, future in list(self._streams):
            if not future.done():
                counts[queue] = counts.get(queue, 0) + 1
        return counts

    def failed(self) -> list[str]:
        """Queues with a stream that ended (while nobody asked them to)."""
        return [queue for queue, future in list(self._streams) if future.done()]

    def failure(self) -> StreamFailed | None:
        """The first ended stream, as an error that says what to do."""
        for queue, future in list(self._streams):
            if future.done():
                exc = future.exception()
                path = self.settings.subscription_path(queue)
                if isinstance(exc, gexc.NotFound):
                    return StreamFailed(f"subscription {path} does not exist: run "
                                        f"`pubsub-jobs bootstrap --queue {queue}` (or Terraform)")
                return StreamFailed(
                    f"the stream of {path} failed: {describe(exc) if exc else 'ended'}"
                )
        return None

    def close(self, timeout: float) -> bool:
        """Cancel every stream and wait up to ``timeout`` for their running callbacks;
        False when some were still running then (they will be redelivered)."""
        for _, future in self._streams:
            future.cancel()
        deadline = time.monotonic() + timeout
        clean = True
        for queue, future in self._streams:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except (FutureTimeout, TimeoutError):
                clean = False
                log.warning("queue %s: jobs still running after %.0fs; they will be "
                            "redelivered", queue, timeout)
            except Exception as exc:
                if not isinstance(exc, gexc.Cancelled):
                    log.debug("stream of %s ended with %s", queue, describe(exc))
        self._streams.clear()
        return clean
