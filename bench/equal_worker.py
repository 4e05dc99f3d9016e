"""The second table's worker phases (see :mod:`bench.equal`): draining, enqueue-to-start,
and the resident memory of a worker process, each beside the raw subscriber with the same
streams, threads and ``FlowControl``."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from bench._common import (
    ROOT,
    Figure,
    interleaved,
    log,
    median_ms,
    percentile_ms,
    vm_status,
    wait_until,
)
from bench.equal import Bench
from pubsub_jobs.worker.options import DEFAULT_PREFETCH

# ---------------------------------------------------------------- phase 3: drain


def phase_drain(b: Bench) -> list[Figure]:
    from bench._proc import start_raw, stop_raw
    from pubsub_jobs.worker import QueueSpec, Worker

    per = b.config.threads_per_stream
    timeout = max(120.0, b.config.drain_n / 100)

    def raw(streams: int, n: int) -> dict[str, float]:
        with b.queue(f"drain-raw-k{streams}", fill=n) as queue:
            handled: list[str] = []

            def callback(message: Any) -> None:
                handled.append(message.message_id)
                message.ack()

            started, cpu = time.perf_counter(), time.process_time()
            subscriber, futures = start_raw(
                b.settings.subscription_path(queue), streams, per, callback, DEFAULT_PREFETCH
            )
            wait_until(lambda: len(handled), n, timeout, "raw subscriber")
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            stop_raw(subscriber, futures)
        return {"rate": n / elapsed, "cpu_us": cpu / n * 1e6,
                "duplicates": len(handled) - len(set(handled))}

    def ours(streams: int, n: int) -> dict[str, float]:
        with b.queue(f"drain-ours-k{streams}", fill=n) as queue:
            worker = Worker([QueueSpec(queue, per * streams, streams)], settings=b.settings)
            started, cpu = time.perf_counter(), time.process_time()
            worker.start()
            try:
                wait_until(lambda: worker.stats.processed, n, timeout, "pubsub-jobs worker")
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            finally:
                worker.stop()
            stats = worker.stats.snapshot()
        if stats["failed"] or stats["dead_lettered"]:
            raise RuntimeError(f"no-op jobs failed: {stats}")
        return {"rate": n / elapsed, "cpu_us": cpu / n * 1e6,
                "duplicates": stats["processed"] - n}

    n = b.config.drain_n
    if b.config.warmup:  # a short drain of each side; later rounds are warm already
        raw(b.config.streams[0], max(1, n // 5))
        ours(b.config.streams[0], max(1, n // 5))
    figures = []
    for k in b.config.streams:
        out = interleaved({"raw": functools.partial(raw, k, n),
                           "ours": functools.partial(ours, k, n)}, b.config.reps, warmup=False)
        raw_setup = b.raw_setup_text(k) + "; callback records the id and acks"
        figures += [
            Figure(f"drain_k{k}", f"3. drain {n:,} no-op jobs, K={k} stream(s)", "msg/s",
                   True, out["raw"]["rate"], out["ours"]["rate"], target=0.8,
                   raw_setup=raw_setup, ours_setup=b.ours_setup_text(k),
                   extra={"duplicates": {"raw": out["raw"]["duplicates"],
                                         "pubsub_jobs": out["ours"]["duplicates"]}}),
            Figure(f"drain_cpu_k{k}", f"3. CPU time per job while draining, K={k}", "us",
                   False, out["raw"]["cpu_us"], out["ours"]["cpu_us"],
                   raw_setup=raw_setup, ours_setup=b.ours_setup_text(k)),
        ]
        log(f"drain K={k}: raw {out['raw']}, ours {out['ours']}")
    return figures


# ---------------------------------------------------------------- phase 4: enqueue to start


def phase_start(b: Bench) -> list[Figure]:
    import queue as queue_module

    from bench import jobs
    from bench._proc import start_raw, stop_raw
    from pubsub_jobs.worker import QueueSpec, Worker

    n, per = b.config.start_n, b.config.threads_per_stream

    def raw() -> dict[str, float]:
        started_at: queue_module.SimpleQueue[tuple[str, float]] = queue_module.SimpleQueue()

        def callback(message: Any) -> None:
            started_at.put((message.attributes["job_id"], time.perf_counter()))
            message.ack()

        samples = []
        with b.queue("start-raw") as queue:
            topic = b.settings.topic_path(queue)
            subscriber, futures = start_raw(
                b.settings.subscription_path(queue), 1, per, callback, DEFAULT_PREFETCH
            )
            try:
                time.sleep(b.config.settle)
                for _ in range(n):
                    attributes = {**b.attributes, "job_id": str(uuid.uuid4())}
                    t0 = time.perf_counter()
                    future = b.raw_single.publish(topic, b.data, **attributes)
                    job_id, t1 = started_at.get(timeout=30)
                    future.result(timeout=30)
                    assert job_id == attributes["job_id"], "a message came twice"
                    samples.append(t1 - t0)
            finally:
                stop_raw(subscriber, futures)
        return {"p50": median_ms(samples), "p99": percentile_ms(samples, 99)}

    def ours() -> dict[str, float]:
        samples = []
        with b.queue("start-ours") as queue:
            stamp = jobs.stamp.using(queue=queue)
            worker = Worker([QueueSpec(queue, per, 1)], settings=b.settings)
            worker.start()
            try:
                time.sleep(b.config.settle)
                for i in range(n):
                    t0 = time.perf_counter()
                    enqueued = stamp.enqueue(b.payload)
                    job_id, t1 = jobs.STARTED.get(timeout=30)
                    assert job_id == enqueued.job_id, "a job ran twice"
                    samples.append(t1 - t0)
                    wait_until(lambda: worker.stats.processed, i + 1, 30, "worker")
            finally:
                worker.stop()
        return {"p50": median_ms(samples), "p99": percentile_ms(samples, 99)}

    out = interleaved({"raw": raw, "ours": ours}, b.config.reps, warmup=False)
    raw_setup = ("publish with BatchSettings(max_messages=1) -> callback start; "
                 + b.raw_setup_text(1))
    ours_setup = "Job.enqueue -> job start; " + b.ours_setup_text(1)
    return [
        Figure("start_p50", f"4. enqueue-to-start p50 ({n} single jobs, idle worker)", "ms",
               False, out["raw"]["p50"], out["ours"]["p50"],
               raw_setup=raw_setup, ours_setup=ours_setup),
        Figure("start_p99", f"4. enqueue-to-start p99 ({n} single jobs, idle worker)", "ms",
               False, out["raw"]["p99"], out["ours"]["p99"],
               raw_setup=raw_setup, ours_setup=ours_setup),
    ]


# ---------------------------------------------------------------- phase 5: memory

def phase_rss(b: Bench) -> list[Figure]:
    n, per = b.config.rss_n, b.config.threads_per_stream
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": b.host, "PUBSUB_JOBS_PROJECT_ID": "bench",
           "PUBSUB_JOBS_PREFIX": b.prefix, "PYTHONPATH": str(ROOT)}

    def run(side: str) -> dict[str, float]:
        with b.queue(f"rss-{side}") as queue:
            target = queue if side == "ours" else b.settings.subscription_path(queue)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench._proc", side, target, "--concurrency", str(per),
                 "--streams", "1", "--expect", str(n), "--prefetch", str(DEFAULT_PREFETCH)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=env, text=True,
            )
            try:
                assert proc.stdout is not None and proc.stdin is not None
                line = proc.stdout.readline()
                if line.strip() != "ready":
                    raise RuntimeError(f"{side} worker process did not start: {line!r}")
                time.sleep(max(1.0, b.config.settle * 2))
                idle = vm_status(proc.pid)["VmRSS"]
                b.fill(queue, n)
                line = proc.stdout.readline()
                if not line.startswith("done"):
                    raise RuntimeError(f"{side} worker process failed: {line!r}")
                after = vm_status(proc.pid)
                proc.stdin.close()
                proc.wait(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        return {"idle": idle, "after": after["VmRSS"], "peak": after["VmHWM"]}

    out = interleaved({"raw": lambda: run("raw"), "ours": lambda: run("ours")},
                      b.config.reps, warmup=False)
    raw_setup = "process running " + b.raw_setup_text(1)
    ours_setup = "process running " + b.ours_setup_text(1) + ", importing bench.jobs"
    return [
        Figure("rss_idle", "5. worker process RSS, idle", "MiB", False,
               out["raw"]["idle"], out["ours"]["idle"], raw_setup=raw_setup,
               ours_setup=ours_setup),
        Figure("rss_after", f"5. worker process RSS after {n:,} jobs", "MiB", False,
               out["raw"]["after"], out["ours"]["after"], raw_setup=raw_setup,
               ours_setup=ours_setup,
               extra={"peak_mib": {"raw": out["raw"]["peak"],
                                   "pubsub_jobs": out["ours"]["peak"]}}),
    ]

