"""The immediate adapter: each job is performed at once, in the caller's thread.

It encodes every job to the wire format and decodes it back before running it, with the same
:class:`~pubsub_jobs.perform.Performer` as the worker (see also
:class:`~pubsub_jobs.adapters.memory.InMemoryAdapter`, which holds jobs until a test runs them).
"""

from __future__ import annotations

from collections.abc import Sequence

from pubsub_jobs.adapter import Adapter, duplicate_of, result_for
from pubsub_jobs.adapters._held import TaskNames
from pubsub_jobs.delivery import Delivery
from pubsub_jobs.errors import JobFailed
from pubsub_jobs.jobs import Registry
from pubsub_jobs.message import EnqueuedJob, JobMessage, utcnow
from pubsub_jobs.middleware import Middleware, MiddlewareChain
from pubsub_jobs.outcome import Action, Outcome
from pubsub_jobs.perform import Performer
from pubsub_jobs.settings import Settings


class ImmediateAdapter(Adapter):
    """Performs each job at once, in the caller's thread, delayed ones too.

    With ``raise_errors`` (the default) a job that would be retried or dead-lettered raises
    :class:`JobFailed` from ``enqueue``, chained to the job's exception.
    """

    supports_delay = True

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        *,
        middleware: Sequence[Middleware] = (),
        raise_errors: bool = True,
    ) -> None:
        super().__init__(middleware)
        self.raise_errors = raise_errors
        self.performer = Performer(registry, settings, MiddlewareChain(middleware))
        self.outcomes: list[Outcome] = []
        self._names = TaskNames()

    def publish(self, message: JobMessage) -> EnqueuedJob:
        data, attributes = message.encode()
        outcome = self.performer.perform(Delivery(data, attributes, None, 1, message.queue))
        self.outcomes.append(outcome)
        if self.raise_errors and outcome.action is not Action.ACK:
            raise JobFailed(
                f"job {message.job_name} {message.job_id} failed: {outcome.reason.value}",
                outcome,
            ) from outcome.error
        return result_for(message, None)

    def schedule(self, message: JobMessage) -> EnqueuedJob:
        """Run the job now; a unique job run within the hour is a duplicate, as in
        Cloud Tasks."""
        if message.unique is not None:
            if self._names.taken(message.job_id, utcnow()):
                return duplicate_of(message, "the immediate adapter ran it")
            self._names.hold(message.job_id)
            self._names.leave(message.job_id, utcnow())
        return self.publish(message)

    def close(self) -> None:
        self.performer.close()
