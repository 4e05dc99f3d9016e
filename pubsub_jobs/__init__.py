"""pubsub-jobs: background jobs for Python applications on Google Cloud Pub/Sub.

>>> from pubsub_jobs import job
>>> @job(queue="mailers")
... def send_welcome(user_id: int, *, locale: str = "en") -> None: ...
>>> send_welcome.enqueue(42, locale="ja")  # doctest: +SKIP
"""

import importlib
import typing

from pubsub_jobs import _default_adapter

if typing.TYPE_CHECKING:
    from pubsub_jobs.adapter import Adapter
    from pubsub_jobs.adapters import cancel, get_adapter, set_adapter, use_adapter
    from pubsub_jobs.adapters.immediate import ImmediateAdapter
    from pubsub_jobs.adapters.memory import InMemoryAdapter
    from pubsub_jobs.adapters.pubsub import PubSubAdapter
    from pubsub_jobs.context import JobContext, current_job
    from pubsub_jobs.cron.schedules import Schedule, schedule
    from pubsub_jobs.errors import (
        BulkEnqueueError,
        CancelError,
        ConfigurationError,
        DeadJobNotFound,
        EnqueueError,
        InvalidArguments,
        InvalidMessage,
        InvalidSchedule,
        JobDefinitionError,
        JobError,
        JobFailed,
        MessageTooLarge,
        Retry,
        ScheduleTooFar,
        TopicNotFound,
        TopologyDrift,
        UnknownJob,
    )
    from pubsub_jobs.jobs import Job, Registry, default_registry, enqueue_many, job
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.middleware import Middleware
    from pubsub_jobs.queues import Queue, queue
    from pubsub_jobs.settings import QueueOptions, Settings, configure, get_settings

__version__ = "0.1.0"

# Every public name loads on first use (PEP 562): pytest imports this package for its plugin
# in every project that has pubsub-jobs installed, and the worker and the command line
# import only what their path needs. pydantic and the Google clients are the heavy part.
# No submodule is named like a public name (the decorator ``job`` lives in ``jobs.py``):
# importing a submodule sets the package's attribute of that name to the module.
_HOMES = {
    "pubsub_jobs.adapter": ("Adapter",),
    "pubsub_jobs.adapters": ("cancel", "get_adapter", "set_adapter", "use_adapter"),
    "pubsub_jobs.adapters.immediate": ("ImmediateAdapter",),
    "pubsub_jobs.adapters.memory": ("InMemoryAdapter",),
    "pubsub_jobs.adapters.pubsub": ("PubSubAdapter",),
    "pubsub_jobs.context": ("JobContext", "current_job"),
    "pubsub_jobs.errors": (
        "BulkEnqueueError", "CancelError", "ConfigurationError", "DeadJobNotFound",
        "EnqueueError",
        "InvalidArguments", "InvalidMessage", "InvalidSchedule", "JobDefinitionError",
        "JobError", "JobFailed", "MessageTooLarge", "Retry", "ScheduleTooFar", "TopicNotFound",
        "TopologyDrift", "UnknownJob",
    ),
    "pubsub_jobs.jobs": ("Job", "Registry", "default_registry", "enqueue_many", "job"),
    "pubsub_jobs.message": ("EnqueuedJob", "JobMessage"),
    "pubsub_jobs.middleware": ("Middleware",),
    "pubsub_jobs.queues": ("Queue", "queue"),
    "pubsub_jobs.cron.schedules": ("Schedule", "schedule"),
    "pubsub_jobs.settings": ("QueueOptions", "Settings", "configure", "get_settings"),
}
_HOME_OF = {name: module for module, names in _HOMES.items() for name in names}


def __getattr__(name: str) -> object:
    module = _HOME_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'pubsub_jobs' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOME_OF})


def _first_default_adapter() -> "Adapter":
    """The core's default-adapter provider until the adapters load (they install their own)."""
    from pubsub_jobs.adapters import get_adapter

    return get_adapter()


_default_adapter.set_default_adapter_provider(_first_default_adapter)

__all__ = [
    "Adapter",
    "BulkEnqueueError",
    "CancelError",
    "ConfigurationError",
    "DeadJobNotFound",
    "EnqueueError",
    "EnqueuedJob",
    "ImmediateAdapter",
    "InMemoryAdapter",
    "InvalidArguments",
    "InvalidMessage",
    "InvalidSchedule",
    "Job",
    "JobContext",
    "JobDefinitionError",
    "JobError",
    "JobFailed",
    "JobMessage",
    "MessageTooLarge",
    "Middleware",
    "PubSubAdapter",
    "Queue",
    "QueueOptions",
    "Registry",
    "Retry",
    "Schedule",
    "ScheduleTooFar",
    "Settings",
    "TopicNotFound",
    "TopologyDrift",
    "UnknownJob",
    "cancel",
    "configure",
    "current_job",
    "default_registry",
    "enqueue_many",
    "get_adapter",
    "get_settings",
    "job",
    "queue",
    "schedule",
    "set_adapter",
    "use_adapter",
]
