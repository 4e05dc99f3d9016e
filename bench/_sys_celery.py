"""Celery with kombu's ``gcpubsub`` transport, at their defaults; runs in its own virtualenv
(:mod:`bench.peers`) and imports nothing of pubsub-jobs.

The worker is ``celery -A bench._sys_celery worker --pool threads --concurrency 8`` (started
by the harness) on Celery's default queue. The transport creates the topic and subscription
when the queue is first declared. ``BENCH_PROJECT`` and ``PUBSUB_EMULATOR_HOST`` come from
the environment.
"""

from __future__ import annotations

import gc
import os

from celery import Celery

from bench import _marks

app = Celery("bench", broker=f"gcpubsub://projects/{os.environ['BENCH_PROJECT']}")


@app.task
def count(i: int, payload: str) -> None:
    _marks.hit(i)


def setup() -> None:
    """Declare Celery's default queue, as the first ``delay()`` would."""
    with app.connection_for_write() as connection:
        for queue in app.amqp.queues.values():
            queue.bind(connection.default_channel).declare()


def enqueue(n: int, payload: str) -> None:
    from google.cloud.pubsub_v1 import PublisherClient

    for i in range(n):
        count.delay(i, payload)
    # The transport drops the publish futures; stop() sends what is batched and waits for
    # it, so the rate counts only messages Pub/Sub took.
    for client in [o for o in gc.get_objects() if isinstance(o, PublisherClient)]:
        client.stop()
