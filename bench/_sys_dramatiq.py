"""dramatiq with dramatiq-gcpubsub's broker, at their defaults; runs in its own virtualenv
(:mod:`bench.peers`) and imports nothing of pubsub-jobs.

The worker is ``dramatiq bench._sys_dramatiq --processes 1 --threads 8`` (started by the
harness). Importing this module declares the queue, which creates its topic and
subscription (the broker does that itself). ``BENCH_PROJECT`` and ``PUBSUB_EMULATOR_HOST``
come from the environment.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq_gcpubsub import PubSubBroker

from bench import _confirm, _marks

broker = PubSubBroker(project_id=os.environ["BENCH_PROJECT"])
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="bench")
def count(i: int, payload: str) -> None:
    _marks.hit(i)


def setup() -> None:
    """Nothing more: importing this module declared the queue."""


def enqueue(n: int, payload: str) -> None:
    # The broker drops the publish futures: they are recorded, so the rate counts only
    # messages Pub/Sub confirmed, and none is lost when this process exits.
    futures = _confirm.record_publishes()
    for i in range(n):
        count.send(i, payload)
    _confirm.wait_confirmed(futures)
