"""What every phase of the benchmark shares: its sizes (:class:`Config`), a measured figure
beside the raw client (:class:`Figure`), interleaved repetitions, and what the machine is."""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Config:
    """Sizes of each phase; the defaults take about 15 minutes on 2 cores (more the first
    time, which installs the peers)."""

    #: Headline: jobs per run with one stream, and with K streams (K in ``headline_streams``).
    headline_n: int = 20_000
    headline_streams_n: int = 50_000
    headline_streams: tuple[int, ...] = (4, 8)
    #: Peers in the headline (their virtualenvs are installed on first use).
    peers: tuple[str, ...] = ("dramatiq", "celery")
    #: A fresh emulator for every headline run (else one for them all, each run in a
    #: project of its own), and the unrecorded messages through it first (JIT warm-up).
    headline_fresh_emulator: bool = True
    emulator_warmup_n: int = 2_000
    #: Second table (equal flow control).
    publish_n: int = 20_000
    latency_n: int = 200
    drain_n: int = 5_000
    streams: tuple[int, ...] = (1, 4)
    threads_per_stream: int = 10
    start_n: int = 100
    rss_n: int = 3_000
    #: The prefetch phase: drain size, prefetch values, and the burst spread over two workers.
    prefetch_n: int = 5_000
    prefetch_values: tuple[int, ...] = (0, 10, 40, 100, 990)
    spread_n: int = 1_000
    spread_seconds: float = 0.01
    #: The exactly-once phase: jobs drained per side (plain, exactly-once).
    exactly_once_n: int = 5_000
    payload_bytes: int = 200
    reps: int = 3
    warmup: bool = True
    settle: float = 1.0


QUICK = Config(
    headline_n=200, headline_streams_n=300, headline_streams=(4,),
    headline_fresh_emulator=False, emulator_warmup_n=0,
    publish_n=200, latency_n=10, drain_n=100, start_n=10, rss_n=100, prefetch_n=100,
    prefetch_values=(0, 40), spread_n=40, exactly_once_n=100, warmup=False, settle=0.3,
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



def vm_status(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM of a process, in MiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values



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

