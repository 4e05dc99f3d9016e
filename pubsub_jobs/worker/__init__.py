"""How jobs are pulled and run: the streaming-pull :class:`Worker`, told by
:class:`WorkerOptions` what to run."""

from pubsub_jobs.worker.counters import COUNTERS, WorkerStats
from pubsub_jobs.worker.options import QueueSpec, WorkerOptions
from pubsub_jobs.worker.runner import Worker

__all__ = ["COUNTERS", "QueueSpec", "Worker", "WorkerOptions", "WorkerStats"]
