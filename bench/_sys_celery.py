"""Celery with kombu's ``gcpubsub`` transport, at their defaults; runs in its own virtualenv
(:mod:`bench.peers`) and imports nothing of pubsub-jobs.

The worker is ``celery -A bench._sys_celery worker --pool threads --concurrency 8`` (started
by the harness) on Celery's default queue. The transport creates the topic and subscription
when the queue is first declared. ``BENCH_PROJECT`` and ``PUBSUB_EMULATOR_HOST`` come from
the environment.
"""

from __future__ import annotations

import os

from celery import Celery

from bench import _confirm, _marks

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
    # The transport drops the publish futures: they are recorded, so the rate counts only
    # messages Pub/Sub confirmed, and none is lost when this process exits.
    futures = _confirm.record_publishes()
    for i in range(n):
        count.delay(i, payload)
    _confirm.wait_confirmed(futures)
