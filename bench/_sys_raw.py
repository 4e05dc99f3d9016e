"""The raw ``google-cloud-pubsub`` client at its own defaults, as a user writes it by hand.

Enqueue: ``PublisherClient().publish`` of a JSON body per job (default ``BatchSettings``),
then every future's ``result()``. Worker: ``python -m bench._sys_raw worker --streams K``
calls ``SubscriberClient().subscribe(path, callback)`` K times with the defaults
(``FlowControl()``, the default scheduler), a callback that decodes the body, counts the job
(:mod:`bench._marks`) and acks. Imports nothing of pubsub-jobs. ``BENCH_PROJECT`` and
``PUBSUB_EMULATOR_HOST`` come from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from google.cloud import pubsub_v1

from bench import _marks

TOPIC = "raw-bench"
SUBSCRIPTION = "raw-bench-sub"


def _paths() -> tuple[str, str]:
    project = os.environ["BENCH_PROJECT"]
    return f"projects/{project}/topics/{TOPIC}", f"projects/{project}/subscriptions/{SUBSCRIPTION}"


def setup() -> None:
    """A topic and a plain subscription (the console's defaults)."""
    topic, subscription = _paths()
    pubsub_v1.PublisherClient().create_topic(name=topic)
    pubsub_v1.SubscriberClient().create_subscription(name=subscription, topic=topic)


def enqueue(n: int, payload: str) -> None:
    topic, _ = _paths()
    publisher = pubsub_v1.PublisherClient()
    futures = [
        publisher.publish(topic, json.dumps({"i": i, "payload": payload}).encode())
        for i in range(n)
    ]
    for future in futures:
        future.result(timeout=300)


def callback(message: Any) -> None:
    _marks.hit(json.loads(message.data)["i"])
    message.ack()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench._sys_raw")
    parser.add_argument("mode", choices=["worker"])
    parser.add_argument("--streams", type=int, default=1)
    args = parser.parse_args(argv)
    _, subscription = _paths()
    subscriber = pubsub_v1.SubscriberClient()
    futures = [subscriber.subscribe(subscription, callback) for _ in range(args.streams)]
    for future in futures:  # until SIGTERM ends the process
        future.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
