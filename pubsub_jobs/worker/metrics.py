"""``/metrics``: a worker's (or a supervisor's summed) status in Prometheus' text format.

The counters are the delivery layer's (:data:`pubsub_jobs.delivery.COUNTERS`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from pubsub_jobs.delivery import COUNTERS


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
