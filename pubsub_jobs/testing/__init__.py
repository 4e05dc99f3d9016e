"""Test helpers shipped to users: a pytest plugin (loaded automatically) and functions.

Fixtures (see :mod:`pubsub_jobs.testing.plugin`): ``pubsub_emulator``,
``cloud_tasks_emulator``, ``pubsub_jobs_settings``, ``delayed_jobs_settings``,
``bootstrap_queues``, ``drain_queues``, ``dead_letters``, ``memory_adapter`` and
``immediate_adapter``. Dead jobs, whether pulled from the emulator or kept by the in-memory
adapter, are the dead set's own :class:`~pubsub_jobs.dead.job.DeadJob`.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pubsub_jobs.dead.job import DeadJob
    from pubsub_jobs.testing.delayed import PendingDelayedJob, pending_delayed_jobs
    from pubsub_jobs.testing.helpers import drain, publish_raw, pull_dead_letters

__all__ = [
    "DeadJob",
    "PendingDelayedJob",
    "drain",
    "pending_delayed_jobs",
    "publish_raw",
    "pull_dead_letters",
]


def __getattr__(name: str) -> Any:
    # pytest imports this package for its plugin in every project that has pubsub-jobs
    # installed: the helpers (and the clients they need) load on first use only.
    if name == "DeadJob":
        from pubsub_jobs.dead.job import DeadJob

        return DeadJob
    if name in ("PendingDelayedJob", "pending_delayed_jobs"):
        from pubsub_jobs.testing import delayed

        return getattr(delayed, name)
    if name in __all__:
        from pubsub_jobs.testing import helpers

        return getattr(helpers, name)
    raise AttributeError(f"module 'pubsub_jobs.testing' has no attribute {name!r}")
