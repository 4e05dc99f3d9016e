"""How evenly a rate-limited queue delivers (``python -m bench.rate``): a queue declared with
``rate_limit=50``, 4 worker processes (``pubsub-jobs worker``), a backlog larger than a
minute's worth, over 60 s on the emulators.

The jobs (:mod:`bench._paced_jobs`) are enqueued with ``enqueue_many`` into the queue's own
Cloud Tasks queue (``<prefix>paced-rate``, made by ``bootstrap`` with
``max_dispatches_per_second=50``) while it is paused; the workers are started; then the queue
is resumed and every job appends the time it ran to a file of its worker's. Reported: the
jobs that ran in the minute after the resume, a second (the mean), and the count of each
whole second (the spread: min, max, standard deviation, how many seconds were within 10 %
of 50). The first second holds the bucket's burst: Cloud Tasks (and the emulator) start a
queue with a full bucket of about its rate, so up to 2 x 50 run in it. It uses
``PUBSUB_EMULATOR_HOST`` when an emulator answers there, else starts one; it always starts
its own Cloud Tasks emulator. Results go to ``bench/results/rate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench._common import RESULTS, ROOT, log, machine
from bench._paced_jobs import PACED, RATE

PROJECT = "bench-project"
WORKERS = 4


def run(seconds: int, logs: Path) -> dict[str, Any]:
    from bench import _paced_jobs
    from bench.unique import _emulators
    from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_client, tasks_queue_path
    from pubsub_jobs.adapters.pubsub import PubSubAdapter
    from pubsub_jobs.admin.topology import bootstrap
    from pubsub_jobs.settings import load_settings

    started, pubsub, tasks = _emulators(logs)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        settings = load_settings(project_id=PROJECT, prefix=f"r{uuid.uuid4().hex[:6]}-",
                                 pubsub_emulator_host=pubsub, cloud_tasks_emulator_host=tasks,
                                 cloud_tasks_location="us-central1")
        report = bootstrap([PACED], settings)
        path = tasks_queue_path(settings, PACED)
        assert path in report.created, report
        client = cloud_tasks_client(settings)
        rate = client.get_queue(name=path).rate_limits.max_dispatches_per_second
        client.pause_queue(name=path)
        backlog = int(RATE * seconds * 1.25)
        adapter = PubSubAdapter(settings, middleware=())
        began = time.perf_counter()
        _paced_jobs.paced.using(adapter=adapter).enqueue_many([(n,) for n in range(backlog)])
        log(f"{backlog} jobs in {path} in {time.perf_counter() - began:.1f} s")
        adapter.close()
        env = {**os.environ, "PUBSUB_EMULATOR_HOST": pubsub, "CLOUD_TASKS_EMULATOR_HOST": tasks,
               "PUBSUB_JOBS_PROJECT_ID": PROJECT, "PUBSUB_JOBS_PREFIX": settings.prefix,
               "PUBSUB_JOBS_CLOUD_TASKS_LOCATION": "us-central1"}
        files = [logs / f"ran-{i}.txt" for i in range(WORKERS)]
        program = str(Path(sys.executable).with_name("pubsub-jobs"))
        for i in range(WORKERS):
            workers.append(subprocess.Popen(
                [program, "worker", "bench._paced_jobs", "--queue", PACED],
                cwd=ROOT, env={**env, "BENCH_RATE_LOG": str(files[i])},
                stdout=(logs / f"worker-{i}.log").open("wb"), stderr=subprocess.STDOUT))
        time.sleep(5)  # subscribed (nothing is on the topic yet: the queue is paused)
        assert all(w.poll() is None for w in workers), "a worker exited; see its log"
        t0 = time.time()
        client.resume_queue(name=path)
        time.sleep(seconds + 1)
        client.transport.close()
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
        for process in reversed(started):
            process.stop()
    times = [float(line) for f in files if f.exists() for line in f.read_text().split()]
    per_worker = [len(f.read_text().split()) if f.exists() else 0 for f in files]
    counts = [0] * seconds
    for moment in times:
        second = int(moment - t0)
        if 0 <= second < seconds:
            counts[second] += 1
    steady = counts[1:]
    within = sum(abs(c - RATE) <= RATE * 0.1 for c in steady)
    return {
        "rate_limit": RATE, "cloud_tasks_queue_rate": rate, "workers": WORKERS,
        "seconds": seconds, "backlog": backlog, "jobs_run_by_each_worker": per_worker,
        "delivered_in_window": sum(counts),
        "mean_jobs_per_second": round(sum(counts) / seconds, 2),
        "mean_jobs_per_second_after_first_second": round(sum(steady) / len(steady), 2),
        "per_second": counts,
        "per_second_after_first": {
            "min": min(steady), "max": max(steady),
            "stdev": round(statistics.pstdev(steady), 2),
            "within_10_percent": f"{within} of {len(steady)}"},
        "target": f"{RATE} +/- 10 % jobs/s over the minute",
        "meets_target": abs(sum(counts) / seconds - RATE) <= RATE * 0.1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", type=Path, default=RESULTS / "rate.json")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-rate-") as logs:
        result = run(args.seconds, Path(logs))
    result = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "machine": machine(), "load_before": load_before,
              "load_after": os.getloadavg()[0], **result}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
