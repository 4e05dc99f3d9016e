"""How fast pubsub-jobs' Cloud Tasks emulator dispatches: 1,000 due tasks publishing to the
Pub/Sub emulator's REST endpoint, as delayed jobs do (``python -m bench.tasks_dispatch``).

After a warm-up round (3,000 tasks, untimed: the Pub/Sub emulator's JVM compiles its hot
paths; after only 500 the same run takes 2.1 to 2.3 s instead of 1.3 to 1.4 here), the
tasks are created in a paused queue (with the queue's defaults: 500 dispatches a second, a
bucket of 500, 1,000 at once), then the queue is resumed: the figure is the time from
resuming until the queue is empty, every task answered 2xx by the Pub/Sub emulator. It uses
``PUBSUB_EMULATOR_HOST`` when an emulator answers there, else starts one; it always starts
its own Cloud Tasks emulator. The target is under 2 s; the floor is 1 s, since Cloud Tasks
allows a queue at most 500 dispatches a second (500 at once from a full bucket, then 500
more over a second).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import tempfile
import time
import uuid
from pathlib import Path

import grpc
from google.cloud import pubsub_v1, tasks_v2
from google.cloud.tasks_v2.services.cloud_tasks import transports

from pubsub_jobs.emulator import (
    free_port,
    pubsub_emulator_ready,
    start_pubsub_emulator,
    start_tasks_emulator,
)

PROJECT = "bench-project"
LOCATION = f"projects/{PROJECT}/locations/us-central1"


def run(count: int, logs: Path, warmup: int = 3000) -> dict[str, float]:
    """Dispatch ``warmup`` due tasks (not timed: the Pub/Sub emulator's JVM warms up), then
    ``count``; the seconds those took, and the tasks a second."""
    started = []
    host = os.environ.get("PUBSUB_EMULATOR_HOST", "")
    if not host or not pubsub_emulator_ready(host):
        pubsub = start_pubsub_emulator(free_port(), log_path=logs / "pubsub.log")
        started.append(pubsub)
        host = pubsub.host
        os.environ["PUBSUB_EMULATOR_HOST"] = host
    tasks = start_tasks_emulator(free_port(), log_path=logs / "tasks.log")
    started.append(tasks)
    channel = grpc.insecure_channel(tasks.host)
    try:
        topic = f"projects/{PROJECT}/topics/bench-{uuid.uuid4().hex[:8]}"
        publisher = pubsub_v1.PublisherClient()
        publisher.create_topic(name=topic)
        client = tasks_v2.CloudTasksClient(
            transport=transports.CloudTasksGrpcTransport(channel=channel))
        body = json.dumps({"messages": [{"data": base64.b64encode(b"{}").decode(),
                                         "attributes": {"job_name": "bench"}}]}).encode()
        request = tasks_v2.HttpRequest(url=f"http://{host}/v1/{topic}:publish", body=body,
                                       headers={"Content-Type": "application/json"})
        if warmup:
            _dispatch(client, request, warmup)
        seconds = _dispatch(client, request, count)
        return {"tasks": count, "seconds": round(seconds, 3),
                "tasks_per_second": round(count / seconds)}
    finally:
        channel.close()
        for process in reversed(started):
            process.stop()


def _dispatch(client: tasks_v2.CloudTasksClient, request: tasks_v2.HttpRequest,
              count: int) -> float:
    """Create ``count`` tasks in a new paused queue, resume it, and return the seconds until
    the queue is empty."""
    queue = client.create_queue(parent=LOCATION, queue=tasks_v2.Queue(
        name=f"{LOCATION}/queues/bench-{uuid.uuid4().hex[:8]}"))
    client.pause_queue(name=queue.name)
    for start in range(0, count, 100):
        batch = [tasks_v2.CreateTaskRequest(parent=queue.name,
                                            task=tasks_v2.Task(http_request=request))
                 for _ in range(min(100, count - start))]
        client.batch_create_tasks(parent=queue.name, requests=batch).result(timeout=60)
    began = time.perf_counter()
    client.resume_queue(name=queue.name)
    while list(client.list_tasks(request={"parent": queue.name, "page_size": 1}).tasks):
        time.sleep(0.01)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=3000,
                        help="tasks dispatched first, untimed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as logs:
        print(json.dumps(run(args.count, Path(logs), args.warmup)))


if __name__ == "__main__":
    main()
