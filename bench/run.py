"""Benchmarks beside the raw client, on a fresh emulator: ``python -m bench.run [--quick]``.

Each phase measures the raw ``google-cloud-pubsub`` client and pubsub-jobs doing the same
work with the same message size, topic and client settings, interleaving their repetitions
(raw, ours, raw, ours, ...) so that drift of the shared emulator cancels out:

1. bulk publish of N messages (batching, waiting on every future) vs ``enqueue_many``;
2. publish-and-wait of one message vs ``enqueue``: median latency;
3. ``SubscriberClient.subscribe`` with K streams and a recording, acking callback vs the
   worker draining N no-op jobs with K streams: messages per second;
4. enqueue-to-start latency (p50, p99) of single jobs on an idle worker;
5. resident memory of a worker process, idle and after N jobs.

Results go to ``bench/results/latest.json`` and ``latest.md`` (see :mod:`bench.report`).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

#: Topic the publish phases use: created without a subscription, so the emulator keeps nothing.
PUBLISH_QUEUE = "publish"
#: Publish requests in flight in the hand-built reference (as pubsub-jobs' bulk enqueue).
GAPIC_IN_FLIGHT = 4


@dataclass
class Config:
    """Sizes of each phase; the defaults take a few minutes on 2 cores."""

    publish_n: int = 20_000
    latency_n: int = 200
    drain_n: int = 5_000
    streams: tuple[int, ...] = (1, 4)
    threads_per_stream: int = 10
    start_n: int = 100
    rss_n: int = 3_000
    payload_bytes: int = 200
    reps: int = 3
    warmup: bool = True
    settle: float = 1.0


QUICK = Config(
    publish_n=200, latency_n=10, drain_n=100, start_n=10, rss_n=100, warmup=False, settle=0.3
)


@dataclass
class Figure:
    """One measured figure: every repetition of both sides, and the target ratio if any."""

    key: str
    title: str
    unit: str
    higher_is_better: bool
    raw: list[float]
    ours: list[float]
    target: float | None = None
    raw_setup: str = ""
    ours_setup: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.raw)

    @property
    def meets(self) -> bool | None:
        if self.target is None:
            return None
        return self.ratio >= self.target if self.higher_is_better else self.ratio <= self.target

    def as_dict(self) -> dict[str, Any]:
        def summary(values: list[float]) -> dict[str, Any]:
            return {"runs": [round(v, 3) for v in values], "min": round(min(values), 3),
                    "median": round(statistics.median(values), 3),
                    "max": round(max(values), 3)}

        return {
            "key": self.key, "title": self.title, "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "raw": {**summary(self.raw), "setup": self.raw_setup},
            "pubsub_jobs": {**summary(self.ours), "setup": self.ours_setup},
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "meets_target": self.meets,
            **({"extra": self.extra} if self.extra else {}),
        }


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def interleaved(
    sides: dict[str, Callable[[], dict[str, float]]], reps: int, warmup: bool
) -> dict[str, dict[str, list[float]]]:
    """Run each side once to warm up (unrecorded), then ``reps`` rounds, one side after the
    other; returns ``{side: {metric: [value per repetition]}}``."""
    if warmup:
        for run in sides.values():
            run()
    out: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
    for _ in range(reps):
        for name, run in sides.items():
            for metric, value in run().items():
                out[name].setdefault(metric, []).append(value)
    return out


def wait_until(count: Callable[[], int], n: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while count() < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: {count()} of {n} after {timeout:g} s")
        time.sleep(0.002)


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile_ms(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[index] * 1000


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
    def queue(self, name: str, fill: int = 0) -> Iterator[str]:
        """A fresh queue (bootstrap), holding ``fill`` no-op jobs, deleted afterwards."""
        from pubsub_jobs.admin.topology import bootstrap, delete_topology

        queue = f"{name}-{uuid.uuid4().hex[:6]}"
        bootstrap([queue], self.settings)
        try:
            if fill:
                self.fill(queue, fill)
            yield queue
        finally:
            delete_topology([queue], self.settings)

    def fill(self, queue: str, n: int) -> None:
        """Publish ``n`` valid no-op jobs (fast: one encoded template, fresh job ids)."""
        topic = self.settings.topic_path(queue)
        futures = [
            self.raw_batched.publish(topic, self.data, **{**self.attributes,
                                                          "job_id": str(uuid.uuid4())})
            for _ in range(n)
        ]
        for future in futures:
            future.result(timeout=120)

    def raw_setup_text(self, streams: int) -> str:
        per = self.config.threads_per_stream
        return (f"SubscriberClient.subscribe x{streams}, FlowControl(max_messages={per}), "
                f"ThreadScheduler({per} threads) per stream")

    def ours_setup_text(self, streams: int) -> str:
        per = self.config.threads_per_stream
        return (f"Worker(QueueSpec(concurrency={per * streams}, streams={streams})): "
                f"FlowControl(max_messages={per}), {per} threads per stream")


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
                b.settings.subscription_path(queue), streams, per, callback
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
                b.settings.subscription_path(queue), 1, per, callback
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


def vm_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def phase_rss(b: Bench) -> list[Figure]:
    n, per = b.config.rss_n, b.config.threads_per_stream
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": b.host, "PUBSUB_JOBS_PROJECT_ID": "bench",
           "PUBSUB_JOBS_PREFIX": b.prefix, "PYTHONPATH": str(ROOT)}

    def run(side: str) -> dict[str, float]:
        with b.queue(f"rss-{side}") as queue:
            target = queue if side == "ours" else b.settings.subscription_path(queue)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench._proc", side, target, "--concurrency", str(per),
                 "--streams", "1", "--expect", str(n)],
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


PHASES: dict[str, Callable[[Bench], list[Figure]]] = {
    "bulk": phase_bulk,
    "single": phase_single,
    "drain": phase_drain,
    "start": phase_start,
    "rss": phase_rss,
}


# ---------------------------------------------------------------- running


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import platform
    from importlib import metadata

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    emulator = None
    with contextlib.suppress(Exception):
        from pubsub_jobs.emulator import find_pubsub_emulator

        emulator = find_pubsub_emulator().version
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "pubsub_emulator": emulator,
        "google_cloud_pubsub": metadata.version("google-cloud-pubsub"),
        "grpcio": metadata.version("grpcio"),
        "pubsub_jobs": metadata.version("pubsub-jobs"),
    }


def run(config: Config, host: str, phases: list[str]) -> dict[str, Any]:
    """Run the phases against the emulator at ``host``; the results as a JSON-ready dict."""
    load_before = os.getloadavg()
    started = time.monotonic()
    bench = Bench(config, host)
    figures: list[Figure] = []
    try:
        for name in phases:
            log(f"phase {name} ...")
            phase_started = time.monotonic()
            figures += PHASES[name](bench)
            log(f"phase {name} done in {time.monotonic() - phase_started:.1f} s")
    finally:
        bench.close()
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine(),
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "duration_seconds": round(time.monotonic() - started, 1),
        "config": {**asdict(config), "streams": list(config.streams)},
        "figures": [f.as_dict() for f in figures],
    }


def parse_args(argv: list[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes: checks that the harness works, measures nothing")
    parser.add_argument("--emulator-host", metavar="HOST:PORT",
                        help="use this running emulator instead of starting a fresh one")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="directory for latest.json and latest.md (default bench/results)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help=f"comma-separated subset of {','.join(PHASES)}")
    defaults = QUICK if "--quick" in (argv if argv is not None else sys.argv[1:]) else Config()
    for name, flag, help_text in [
        ("publish_n", "--publish-n", "messages per bulk publish (phase 1)"),
        ("latency_n", "--latency-n", "single publishes per repetition (phase 2)"),
        ("drain_n", "--drain-n", "jobs drained per repetition (phase 3)"),
        ("start_n", "--start-n", "single jobs per repetition (phase 4)"),
        ("rss_n", "--rss-n", "jobs before the second RSS reading (phase 5)"),
        ("payload_bytes", "--payload-bytes", "size of the job's string argument"),
        ("reps", "--reps", "repetitions of each side (at least 3 for a report)"),
    ]:
        parser.add_argument(flag, dest=name, type=int, default=getattr(defaults, name),
                            help=f"{help_text} (default {getattr(defaults, name)})")
    parser.add_argument("--streams", default=",".join(map(str, defaults.streams)),
                        help="stream counts K for phase 3 (default %(default)s)")
    args = parser.parse_args(argv)
    config = replace(
        defaults,
        **{name: getattr(args, name) for name in
           ("publish_n", "latency_n", "drain_n", "start_n", "rss_n", "payload_bytes", "reps")},
        streams=tuple(int(k) for k in args.streams.split(",")),
    )
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    return config, args


def main(argv: list[str] | None = None) -> int:
    from bench.report import markdown

    config, args = parse_args(argv)
    phases = [p for p in PHASES if p in args.phases.split(",")]
    emulator = None
    host = args.emulator_host
    if host is None:
        from pubsub_jobs.emulator import free_port, start_pubsub_emulator

        log_dir = Path(tempfile.mkdtemp(prefix="pubsub-jobs-bench-"))
        emulator = start_pubsub_emulator(free_port(), log_path=log_dir / "emulator.log")
        host = emulator.host
        log(f"fresh Pub/Sub emulator at {host} (pid {emulator.pid}, log {log_dir})")
    try:
        results = run(config, host, phases)
    finally:
        if emulator is not None:
            emulator.stop()
    results["emulator"] = "fresh" if emulator is not None else f"reused at {host}"
    args.out.mkdir(parents=True, exist_ok=True)
    import json

    (args.out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (args.out / "latest.md").write_text(table)
    sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
