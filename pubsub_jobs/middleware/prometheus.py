"""Prometheus metrics of enqueued and performed jobs (extra ``prometheus``).

=========================================== ====================================
metric                                      labels
=========================================== ====================================
``pubsub_jobs_jobs_enqueued_total``         queue, job_name
``pubsub_jobs_jobs_enqueue_failed_total``   queue, job_name
``pubsub_jobs_jobs_processed_total``        queue, job_name, outcome
``pubsub_jobs_jobs_failed_total``           queue, job_name
``pubsub_jobs_jobs_dead_lettered_total``    queue, job_name, reason
``pubsub_jobs_job_duration_seconds``        queue, job_name (histogram)
``pubsub_jobs_jobs_in_flight``              queue (gauge)
=========================================== ====================================

``outcome`` and ``reason`` are :class:`~pubsub_jobs.perform.Reason` values. Every
message counts, including those rejected before a job could run (``invalid_message``,
``unknown_job``, ``invalid_arguments``); their ``job_name`` label is empty, because a name
taken from an unchecked message would let anyone who can publish create label values.
The metrics live in ``prometheus_client``'s default registry unless you pass one; the
worker's ``/metrics`` port serves that registry, or call
``prometheus_client.start_http_server``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
except ImportError as exc:
    raise ImportError(
        "pubsub_jobs.middleware.prometheus needs the prometheus extra: "
        "pip install 'pubsub-jobs[prometheus]'"
    ) from exc

from pubsub_jobs.middleware import Middleware
from pubsub_jobs.outcome import Action

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome

__all__ = ["DURATION_BUCKETS", "PrometheusMetrics"]

#: Seconds; jobs run from milliseconds to an hour, so the default buckets stop too early.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


@dataclass(frozen=True, slots=True)
class _Metrics:
    enqueued: Counter
    enqueue_failed: Counter
    processed: Counter
    failed: Counter
    dead_lettered: Counter
    duration: Histogram
    in_flight: Gauge


_lock = threading.Lock()
_registered: weakref.WeakKeyDictionary[CollectorRegistry, _Metrics] = (
    weakref.WeakKeyDictionary()
)


def _metrics(registry: CollectorRegistry, buckets: Sequence[float]) -> _Metrics:
    """The collectors in ``registry``, registered once however many middleware share it."""
    with _lock:
        found = _registered.get(registry)
        if found is None:
            job = ("queue", "job_name")
            found = _registered[registry] = _Metrics(
                enqueued=Counter("pubsub_jobs_jobs_enqueued", "Jobs enqueued.", job,
                                 registry=registry),
                enqueue_failed=Counter("pubsub_jobs_jobs_enqueue_failed",
                                       "Enqueues that raised.", job, registry=registry),
                processed=Counter("pubsub_jobs_jobs_processed",
                                  "Messages settled by the worker, by outcome.",
                                  (*job, "outcome"), registry=registry),
                failed=Counter("pubsub_jobs_jobs_failed",
                               "Messages whose job failed or that could not run.", job,
                               registry=registry),
                dead_lettered=Counter("pubsub_jobs_jobs_dead_lettered",
                                      "Messages sent to the dead-letter topic, by reason.",
                                      (*job, "reason"), registry=registry),
                duration=Histogram("pubsub_jobs_job_duration_seconds",
                                   "How long jobs ran, in seconds.", job,
                                   buckets=tuple(buckets), registry=registry),
                in_flight=Gauge("pubsub_jobs_jobs_in_flight", "Jobs running now.",
                                ("queue",), registry=registry),
            )
        return found


class PrometheusMetrics(Middleware):
    """Counts enqueues and performed jobs, times them, and gauges the jobs running now.

    ``registry``: where the metrics live (default: ``prometheus_client.REGISTRY``); give a
    fresh ``CollectorRegistry`` in tests. Instances sharing a registry share its metrics, so
    the adapter and the worker may each build one. ``buckets`` apply when the registry's
    metrics are first created.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        buckets: Sequence[float] = DURATION_BUCKETS,
    ) -> None:
        self.registry = registry if registry is not None else REGISTRY
        self.metrics = _metrics(self.registry, buckets)

    def after_enqueue(
        self, message: JobMessage, result: EnqueuedJob | None, error: BaseException | None
    ) -> None:
        counter = self.metrics.enqueued if error is None else self.metrics.enqueue_failed
        counter.labels(message.queue, message.job_name).inc()

    def before_perform(self, context: JobContext) -> None:
        self.metrics.in_flight.labels(context.queue).inc()

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        m = self.metrics
        m.in_flight.labels(context.queue).dec()
        m.duration.labels(context.queue, context.job_name).observe(outcome.duration)
        self._count(context.queue, context.job_name, outcome)

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        self._count(queue, "", outcome)

    def _count(self, queue: str, job_name: str, outcome: Outcome) -> None:
        m = self.metrics
        m.processed.labels(queue, job_name, outcome.reason.value).inc()
        if outcome.failed:
            m.failed.labels(queue, job_name).inc()
        if outcome.action is Action.DEAD_LETTER:
            m.dead_lettered.labels(queue, job_name, outcome.reason.value).inc()
