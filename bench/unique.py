"""How fast ``enqueue_many`` creates Cloud Tasks tasks on the emulators
(``python -m bench.unique``): 10,000 unique jobs through ``BatchCreateTasks``, beside 10,000
delayed jobs through the same batches, through concurrent ``CreateTask`` calls (the fallback)
and one ``CreateTask`` after another (what ``enqueue_many`` did for delayed jobs before).

Each measurement gets a Cloud Tasks queue of its own, paused, so that the figure is the
enqueue alone: on the emulator the dispatching of due tasks would share the machine's cores
with it (on Google Cloud it happens elsewhere). One warm-up round of 1,000 jobs each,
unrecorded, then ``--reps`` rounds interleaved; the medians are reported. It uses
``PUBSUB_EMULATOR_HOST`` when an emulator answers there, else starts one; it always starts
its own Cloud Tasks emulator. Results go to ``bench/results/unique.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench._common import RESULTS, log, machine

PROJECT = "bench-project"


def _emulators(logs: Path) -> tuple[list[Any], str, str]:
    from pubsub_jobs.emulator import (
        free_port,
        pubsub_emulator_ready,
        start_pubsub_emulator,
        start_tasks_emulator,
    )

    started = []
    host = os.environ.get("PUBSUB_EMULATOR_HOST", "")
    if not host or not pubsub_emulator_ready(host):
        pubsub = start_pubsub_emulator(free_port(), log_path=logs / "pubsub.log")
        started.append(pubsub)
        host = pubsub.host
    tasks = start_tasks_emulator(free_port(), log_path=logs / "tasks.log")
    started.append(tasks)
    return started, host, tasks.host


def _settings(pubsub: str, tasks: str) -> Any:
    from pubsub_jobs.settings import load_settings

    return load_settings(project_id=PROJECT, prefix=f"b{uuid.uuid4().hex[:6]}-",
                         pubsub_emulator_host=pubsub, cloud_tasks_emulator_host=tasks,
                         cloud_tasks_location="us-central1",
                         cloud_tasks_queue=f"bench-{uuid.uuid4().hex[:8]}")


def measure(pubsub: str, tasks: str, way: str, count: int) -> float:
    """Enqueue ``count`` jobs ``way`` into a fresh paused Cloud Tasks queue; jobs a second."""
    from bench import _paced_jobs
    from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_client, cloud_tasks_queue_path
    from pubsub_jobs.adapters.pubsub import PubSubAdapter
    from pubsub_jobs.admin.topology import ensure_cloud_tasks_queue

    settings = _settings(pubsub, tasks)
    ensure_cloud_tasks_queue(settings)
    client = cloud_tasks_client(settings)
    client.pause_queue(name=cloud_tasks_queue_path(settings))
    adapter = PubSubAdapter(settings, middleware=())
    try:
        assert adapter.scheduler().client is not None  # connected before the clock starts
        tag = uuid.uuid4().hex
        if way == "unique batch":
            job = _paced_jobs.noop.using(unique_for=timedelta(hours=1), adapter=adapter)
            began = time.perf_counter()
            results = job.enqueue_many([(n,) for n in range(count)])
            seconds = time.perf_counter() - began
            assert not any(r.duplicate for r in results), tag
        else:
            job = _paced_jobs.noop.using(delay=timedelta(hours=1), adapter=adapter)
            if way == "delayed, concurrent CreateTask":
                adapter.scheduler().batch_create = False
            began = time.perf_counter()
            if way == "delayed, one CreateTask after another":
                for message in job._messages([(n,) for n in range(count)]):
                    adapter.schedule(message)
            else:
                job.enqueue_many([(n,) for n in range(count)])
            seconds = time.perf_counter() - began
        held = client.get_queue(name=cloud_tasks_queue_path(settings))
        log(f"{way}: {count} in {seconds:.2f} s ({held.name.rsplit('/', 1)[1]})")
        return count / seconds
    finally:
        adapter.close()
        client.delete_queue(name=cloud_tasks_queue_path(settings))
        client.transport.close()


WAYS = ("unique batch", "delayed batch", "delayed, concurrent CreateTask",
        "delayed, one CreateTask after another")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "unique.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-unique-") as logs:
        started, pubsub, tasks = _emulators(Path(logs))
        try:
            load_before = os.getloadavg()[0]
            for way in WAYS:  # warm-up, unrecorded
                measure(pubsub, tasks, way, min(1000, args.count))
            rates: dict[str, list[float]] = {way: [] for way in WAYS}
            for _ in range(args.reps):
                for way in WAYS:
                    rates[way].append(measure(pubsub, tasks, way, args.count))
        finally:
            for process in reversed(started):
                process.stop()
    medians = {way: round(statistics.median(values)) for way, values in rates.items()}
    old = medians["delayed, one CreateTask after another"]
    result = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(), "load_before": load_before, "load_after": os.getloadavg()[0],
        "count": args.count, "reps": args.reps,
        "jobs_per_second": {way: [round(v) for v in values] for way, values in rates.items()},
        "median_jobs_per_second": medians,
        "ratio_to_one_by_one": {way: round(v / old, 2) for way, v in medians.items()},
        "target": "unique batch >= 1,000 jobs/s",
        "meets_target": medians["unique batch"] >= 1000,
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
