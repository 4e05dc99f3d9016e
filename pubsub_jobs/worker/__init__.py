"""How jobs are pulled and run: the streaming-pull :class:`Worker`."""

from pubsub_jobs.worker.perform import Action, Outcome, Performer, Reason
from pubsub_jobs.worker.runner import QueueSpec, Worker, WorkerStats

__all__ = ["Action", "Outcome", "Performer", "QueueSpec", "Reason", "Worker", "WorkerStats"]
