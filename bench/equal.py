"""The second table: pubsub-jobs beside the raw client given the same settings.

Each phase measures the raw ``google-cloud-pubsub`` client and pubsub-jobs doing the same
work with the same message size, topic and client settings (the raw subscriber gets the
worker's own ``FlowControl``: threads plus prefetch), interleaving their repetitions
(raw, ours, raw, ours, ...) so that drift of the shared emulator cancels out:

1. bulk publish of N messages (batching, waiting on every future) vs ``enqueue_many``;
2. publish-and-wait of one message vs ``enqueue``: median latency;
3. ``SubscriberClient.subscribe`` with K streams and a recording, acking callback vs the
   worker draining N no-op jobs with K streams: messages per second (:mod:`bench.equal_worker`);
4. enqueue-to-start latency (p50, p99) of single jobs on an idle worker;
5. resident memory of a worker process, idle and after N jobs.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench._common import Config, Figure, interleaved, median_ms

#: Topic the publish phases use: created without a subscription, so the emulator keeps nothing.
PUBLISH_QUEUE = "publish"
#: Publish requests in flight in the hand-built reference (as pubsub-jobs' bulk enqueue).
GAPIC_IN_FLIGHT = 4


class Bench:
    """Clients, settings and the message template shared by the phases."""

    def __init__(self, config: Config, host: str) -> None:
        from google.cloud import pubsub_v1

        from bench import jobs
        from pubsub_jobs import configure
        from pubsub_jobs.adapters.pubsub import DEFAULT_BATCH

        self.config = config
        self.host = host
        self.prefix = f"bench{uuid.uuid4().hex[:6]}-"
        os.environ["PUBSUB_EMULATOR_HOST"] = host  # the raw clients read it themselves
        self.settings = configure(
            project_id="bench", prefix=self.prefix, pubsub_emulator_host=host
        )
        self.payload = "x" * config.payload_bytes
        data, attributes = jobs.noop.message(self.payload).encode()
        self.data, self.attributes = data, attributes
        self.batch_settings = DEFAULT_BATCH
        #: Raw publisher batching like pubsub-jobs' adapter (phase 1, phase 2 "same settings").
        self.raw_batched = pubsub_v1.PublisherClient(batch_settings=DEFAULT_BATCH)
        #: Raw publisher at its fastest for one message: every publish is sent at once.
        self.raw_single = pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(max_messages=1)
        )
        #: For the floor: Publish requests built by hand, a few in flight.
        self.pool = ThreadPoolExecutor(GAPIC_IN_FLIGHT, thread_name_prefix="bench-gapic")
        self.queues: list[str] = []
        self.topics: list[str] = []

    def close(self) -> None:
        from pubsub_jobs.adapters import get_adapter
        from pubsub_jobs.admin.topology import delete_topology

        with contextlib.suppress(Exception):
            delete_topology(self.queues, self.settings)
        for topic in self.topics:
            with contextlib.suppress(Exception):
                self.raw_batched.delete_topic(topic=topic)
        self.raw_batched.stop()
        self.raw_single.stop()
        self.pool.shutdown()
        get_adapter().close()

    def gapic_publish(self, topic: str, messages: list[Any]) -> list[str]:
        """One Publish request of protobuf messages through the generated client: the floor
        under any library on top of the client (no per-message futures or batching)."""
        from google.pubsub_v1 import PublisherClient as GapicPublisherClient
        from google.pubsub_v1.types import PublishRequest

        request = PublishRequest.wrap(PublishRequest.pb()(topic=topic, messages=messages))
        response = GapicPublisherClient.publish(self.raw_batched, request=request, timeout=60)
        return list(response.message_ids)

    def publish_topic(self) -> str:
        """A topic with no subscription: the emulator stores nothing published to it."""
        topic = self.settings.topic_path(PUBLISH_QUEUE)
        if topic not in self.topics:
            self.raw_batched.create_topic(name=topic)
            self.topics.append(topic)
        return topic

    @contextlib.contextmanager
    def queue(self, name: str, fill: int = 0, exactly_once: bool = False) -> Iterator[str]:
        """A fresh queue (bootstrap), holding ``fill`` no-op jobs, deleted afterwards;
        ``exactly_once``: declared so (:func:`pubsub_jobs.queue`) while it exists."""
        from pubsub_jobs import queue as declare
        from pubsub_jobs.admin.topology import bootstrap, delete_topology
        from pubsub_jobs.queues import declared_queues

        queue = f"{name}-{uuid.uuid4().hex[:6]}"
        if exactly_once:
            declare(queue, exactly_once=True)
        try:
            bootstrap([queue], self.settings)
            try:
                if fill:
                    self.fill(queue, fill)
                yield queue
            finally:
                delete_topology([queue], self.settings)
        finally:
            declared_queues.remove(queue)

    def fill(self, queue: str, n: int) -> None:
        """Publish ``n`` valid no-op jobs (fast: one encoded template, fresh job ids)."""
        topic = self.settings.topic_path(queue)
        attributes = {**self.attributes, "queue_name": queue}  # else a warning per job
        futures = [
            self.raw_batched.publish(topic, self.data,
                                     **{**attributes, "job_id": str(uuid.uuid4())})
            for _ in range(n)
        ]
        for future in futures:
            future.result(timeout=120)

    def raw_setup_text(self, streams: int) -> str:
        from pubsub_jobs.worker.options import DEFAULT_PREFETCH

        per = self.config.threads_per_stream
        return (f"SubscriberClient.subscribe x{streams}, "
                f"FlowControl(max_messages={per + DEFAULT_PREFETCH}), "
                f"ThreadScheduler({per} threads) per stream")

    def ours_setup_text(self, streams: int) -> str:
        from pubsub_jobs.worker.options import DEFAULT_PREFETCH

        per = self.config.threads_per_stream
        return (f"Worker(QueueSpec(concurrency={per * streams}, streams={streams})): "
                f"{per} threads and prefetch {DEFAULT_PREFETCH} per stream, so "
                f"FlowControl(max_messages={per + DEFAULT_PREFETCH})")


# ---------------------------------------------------------------- phase 1: bulk publish


def phase_bulk(b: Bench) -> list[Figure]:
    from google.pubsub_v1.types import PubsubMessage

    from bench import jobs
    from pubsub_jobs.adapters.pubsub import BULK_REQUESTS_IN_FLIGHT

    n = b.config.publish_n
    topic = b.publish_topic()
    noop = jobs.noop.using(queue=PUBLISH_QUEUE)
    calls = [(b.payload,)] * n
    data, attributes = b.data, b.attributes

    def raw() -> dict[str, float]:
        started = time.perf_counter()
        futures = [b.raw_batched.publish(topic, data, **attributes) for _ in range(n)]
        for future in futures:
            future.result(timeout=120)
        return {"rate": n / (time.perf_counter() - started)}

    def ours() -> dict[str, float]:
        started = time.perf_counter()
        noop.enqueue_many(calls)
        return {"rate": n / (time.perf_counter() - started)}

    per_request = b.batch_settings.max_messages

    def gapic() -> dict[str, float]:
        started = time.perf_counter()
        proto = PubsubMessage.pb()
        futures = []
        for first in range(0, n, per_request):
            messages = [proto(data=data, attributes=attributes)
                        for _ in range(min(per_request, n - first))]
            futures.append(b.pool.submit(b.gapic_publish, topic, messages))
        for future in futures:
            future.result(timeout=120)
        return {"rate": n / (time.perf_counter() - started)}

    out = interleaved({"raw": raw, "ours": ours, "gapic": gapic}, b.config.reps,
                      b.config.warmup)
    bs = b.batch_settings
    batching = (f"BatchSettings(max_messages={bs.max_messages}, max_bytes={bs.max_bytes}, "
                f"max_latency={bs.max_latency})")
    ours_setup = ("Job.enqueue_many(N calls): validates, encodes, builds attributes, then "
                  f"Publish requests of up to {bs.max_messages} messages, "
                  f"{BULK_REQUESTS_IN_FLIGHT} in flight")
    return [
        Figure("bulk_publish", f"1. bulk publish of {n:,} messages", "msg/s", True,
               out["raw"]["rate"], out["ours"]["rate"], target=0.9,
               raw_setup=f"PublisherClient.publish x N, then every future's result(); "
                         f"{batching}",
               ours_setup=ours_setup),
        Figure("bulk_publish_floor", "1b. the same, raw as hand-built Publish requests",
               "msg/s", True, out["gapic"]["rate"], out["ours"]["rate"],
               raw_setup=f"generated client's publish(), {per_request} protobuf messages "
                         f"per request, {GAPIC_IN_FLIGHT} in flight (no per-message futures)",
               ours_setup=ours_setup),
    ]


# ---------------------------------------------------------------- phase 2: one publish


def phase_single(b: Bench) -> list[Figure]:
    from google.pubsub_v1.types import PubsubMessage

    from bench import jobs

    n = b.config.latency_n
    topic = b.publish_topic()
    noop = jobs.noop.using(queue=PUBLISH_QUEUE)
    data, attributes, payload = b.data, b.attributes, b.payload

    def raw_with(client: Any) -> Callable[[], dict[str, float]]:
        def run() -> dict[str, float]:
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                client.publish(topic, data, **attributes).result(timeout=60)
                samples.append(time.perf_counter() - started)
            return {"median": median_ms(samples)}
        return run

    def ours() -> dict[str, float]:
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            noop.enqueue(payload)
            samples.append(time.perf_counter() - started)
        return {"median": median_ms(samples)}

    def gapic() -> dict[str, float]:
        proto = PubsubMessage.pb()
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            b.gapic_publish(topic, [proto(data=data, attributes=attributes)])
            samples.append(time.perf_counter() - started)
        return {"median": median_ms(samples)}

    out = interleaved(
        {"raw_single": raw_with(b.raw_single), "ours": ours, "gapic": gapic},
        b.config.reps, b.config.warmup,
    )
    ours_setup = ("Job.enqueue(payload) one after the other: validates, encodes, one Publish "
                  "request")
    return [
        Figure("single_publish", f"2. publish-and-wait of one message, median of {n}", "ms",
               False, out["raw_single"]["median"], out["ours"]["median"], target=1.3,
               raw_setup="publish(...).result() one after the other; "
                         "BatchSettings(max_messages=1): each message sent at once",
               ours_setup=ours_setup),
        Figure("single_publish_floor", "2b. the same, raw as a hand-built Publish request",
               "ms", False, out["gapic"]["median"], out["ours"]["median"],
               raw_setup="generated client's publish() of one protobuf message, "
                         "one after the other",
               ours_setup=ours_setup),
    ]

