"""How jobs are pulled and run: the streaming-pull :class:`Worker`, told by
:class:`WorkerOptions` what to run."""

import typing

from pubsub_jobs.worker.options import QueueSpec, WorkerOptions

if typing.TYPE_CHECKING:
    from pubsub_jobs.worker.runner import Worker

__all__ = ["QueueSpec", "Worker", "WorkerOptions"]


def __getattr__(name: str) -> object:
    # The Worker (with the Pub/Sub client library) loads on first use: the command line
    # reads the options for every command, and the supervisor runs no worker itself.
    if name == "Worker":
        from pubsub_jobs.worker.runner import Worker

        globals()[name] = Worker
        return Worker
    raise AttributeError(f"module 'pubsub_jobs.worker' has no attribute {name!r}")
