"""A subscriber in a process of its own, so the benchmark can read its resident memory.

``python -m bench._proc ours QUEUE ...`` runs a pubsub-jobs :class:`~pubsub_jobs.worker.Worker`
(importing :mod:`bench.jobs`); ``python -m bench._proc raw SUBSCRIPTION_PATH ...`` a plain
``SubscriberClient.subscribe`` with the same streams, threads and ``FlowControl`` (threads
plus the worker's default prefetch per stream), whose
callback records and acks, and which imports nothing of pubsub-jobs. Each prints ``ready``
once subscribed and ``done N`` once it has handled N messages, then exits when its standard
input closes. Settings come from the environment (``PUBSUB_EMULATOR_HOST``,
``PUBSUB_JOBS_PROJECT_ID``, ``PUBSUB_JOBS_PREFIX``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


def flow_control(per_stream: int, prefetch: int) -> Any:
    """The FlowControl the pubsub-jobs worker gives a stream of ``per_stream`` threads (see
    worker/streams.py): threads plus prefetch, 60 s leases."""
    from google.cloud import pubsub_v1

    return pubsub_v1.types.FlowControl(
        max_messages=per_stream + prefetch, max_lease_duration=3600.0,
        min_duration_per_lease_extension=60, max_duration_per_lease_extension=60,
    )


def start_raw(
    subscription: str, streams: int, per_stream: int, callback: Callable[[Any], None],
    prefetch: int,
) -> tuple[Any, list[Any]]:
    """Open ``streams`` streaming pulls on the raw client, each with ``per_stream`` threads."""
    from google.cloud import pubsub_v1
    from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

    subscriber = pubsub_v1.SubscriberClient()
    futures = [
        subscriber.subscribe(
            subscription,
            callback=callback,
            flow_control=flow_control(per_stream, prefetch),
            scheduler=ThreadScheduler(ThreadPoolExecutor(max_workers=per_stream)),
            await_callbacks_on_shutdown=True,
        )
        for _ in range(streams)
    ]
    return subscriber, futures


def stop_raw(subscriber: Any, futures: list[Any]) -> None:
    for future in futures:
        future.cancel()
    for future in futures:
        future.result(timeout=30)
    subscriber.close()


def _wait(count: Callable[[], int], expect: int) -> None:
    while count() < expect:
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._proc")
    parser.add_argument("side", choices=["ours", "raw"])
    parser.add_argument("target", help="queue name (ours) or subscription path (raw)")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--expect", type=int, required=True)
    parser.add_argument("--prefetch", type=int, required=True,
                        help="raw: messages each stream holds beyond its threads")
    args = parser.parse_args(argv)

    if args.side == "ours":
        import bench.jobs  # noqa: F401 - registers the jobs
        from pubsub_jobs.worker import QueueSpec, Worker

        worker = Worker([QueueSpec(args.target, args.concurrency, args.streams)])
        worker.start()
        print("ready", flush=True)
        _wait(lambda: worker.stats.processed, args.expect)
        print(f"done {worker.stats.processed}", flush=True)
        sys.stdin.read()
        worker.stop()
        return 0

    handled: list[str] = []

    def callback(message: Any) -> None:
        handled.append(message.message_id)
        message.ack()

    per_stream = -(-args.concurrency // args.streams)
    subscriber, futures = start_raw(args.target, args.streams, per_stream, callback,
                                    args.prefetch)
    print("ready", flush=True)
    _wait(lambda: len(handled), args.expect)
    print(f"done {len(handled)}", flush=True)
    sys.stdin.read()
    stop_raw(subscriber, futures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
