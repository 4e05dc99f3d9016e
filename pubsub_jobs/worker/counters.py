"""The worker's counters, declared once: counted by the worker, shown by ``/status``,
summed by the supervisor and exported to Prometheus by ``/metrics``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pubsub_jobs.outcome import Action, Outcome

#: Every counter and what it counts (Prometheus: ``pubsub_jobs_worker_<name>_total``).
COUNTERS: dict[str, str] = {
    "received": "Messages handed to a job thread.",
    "processed": "Messages performed (any outcome).",
    "failed": "Jobs that raised (retried, rescheduled or dead-lettered).",
    "retried": "Failed jobs left for another attempt (nacked or rescheduled).",
    "rescheduled": "Failed jobs held in Cloud Tasks for a long-wait retry.",
    "dead_lettered": "Messages dead-lettered with a reason.",
    "discarded": "Jobs whose exception was in their discard_on.",
    "nacked_on_stop": "Messages handed back unstarted because the worker was stopping.",
    "checkpointed": "Stretches of iterating jobs that ended in a checkpoint (continued).",
    "items": "Items iterating jobs finished.",
}


@dataclass
class WorkerStats:
    """Counts since the worker started, and what runs now; change them under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    #: When a job last succeeded, when a message last arrived, and how many arrived since.
    last_succeeded: float = field(default_factory=time.monotonic)
    last_received: float = field(default_factory=time.monotonic)
    received_since_success: int = 0
    #: Jobs running now: message id -> (queue, message, started (monotonic)); the message
    #: has the job's name and id in its ``attributes``, and the lease keeper renews it.
    running: dict[str, tuple[str, Any, float]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> int:
        """A counter by name: ``stats.processed`` is ``stats.counts["processed"]``."""
        counts = self.__dict__.get("counts")
        if counts is not None and name in counts:
            return int(counts[name])
        raise AttributeError(name)

    def count_outcome(self, outcome: Outcome) -> None:
        """Count a performed message; the caller holds ``lock``."""
        counts = self.counts
        counts["processed"] += 1
        if outcome.action is Action.ACK and outcome.error is None:
            if outcome.items:
                counts["items"] += outcome.items
            return  # a job that succeeded: nothing else to count
        counts["items"] += outcome.items
        if outcome.action is Action.CONTINUE:
            counts["checkpointed"] += 1
        if outcome.failed:
            counts["failed"] += 1
        if outcome.action is Action.DEAD_LETTER:
            counts["dead_lettered"] += 1
        elif outcome.action is Action.RESCHEDULE:
            counts["retried"] += 1
            counts["rescheduled"] += 1
        elif outcome.action is Action.NACK:
            counts["retried"] += 1
        elif outcome.error is not None:
            counts["discarded"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        """The counts; the caller holds ``lock``."""
        return {
            **self.counts,
            "in_flight": self.in_flight,
            "idle_seconds": round(time.monotonic() - self.last_activity, 3),
        }


def prometheus_text(status: Mapping[str, Any]) -> bytes:
    """``/metrics``: the counters and gauges of a status (one worker's, or a supervisor's
    sum) plus whatever else is in prometheus-client's default registry (the Prometheus
    middleware's metrics). Needs the ``prometheus`` extra."""
    from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

    ours = CollectorRegistry(auto_describe=True)
    ours.register(_StatusCollector(status))
    text: bytes = generate_latest(ours) + generate_latest(REGISTRY)
    return text


class _StatusCollector:
    """A prometheus-client collector over one status dictionary."""

    def __init__(self, status: Mapping[str, Any]) -> None:
        self.status = status

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, documentation in COUNTERS.items():
            yield CounterMetricFamily(f"pubsub_jobs_worker_{name}", documentation,
                                      value=int(self.status.get(name, 0)))
        yield GaugeMetricFamily("pubsub_jobs_worker_in_flight", "Jobs running now.",
                                value=len(self.status.get("in_flight", [])))
        yield GaugeMetricFamily("pubsub_jobs_worker_stuck", "Whether the worker is stuck.",
                                value=0 if self.status.get("status") == "ok" else 1)
