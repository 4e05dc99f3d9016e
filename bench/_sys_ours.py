"""pubsub-jobs as a user runs it: ``pubsub-jobs bootstrap --queue bench``, then
``bench.jobs.count.enqueue_many(...)``; the worker is ``pubsub-jobs worker bench.jobs
--queue bench`` (started by the harness). Settings come from the environment
(``PUBSUB_JOBS_PROJECT_ID``, ``PUBSUB_EMULATOR_HOST``)."""

from __future__ import annotations

QUEUE = "bench"


def setup() -> None:
    from pubsub_jobs.admin.topology import bootstrap

    bootstrap([QUEUE])


def enqueue(n: int, payload: str) -> None:
    from bench.jobs import count

    count.enqueue_many([(i, payload) for i in range(n)])
