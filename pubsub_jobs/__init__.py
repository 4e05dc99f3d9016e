"""pubsub-jobs: background jobs for Python applications on Google Cloud Pub/Sub.

>>> from pubsub_jobs import job
>>> @job(queue="mailers")
... def send_welcome(user_id: int, *, locale: str = "en") -> None: ...
>>> send_welcome.enqueue(42, locale="ja")  # doctest: +SKIP
"""

import typing

from pubsub_jobs.adapters import get_adapter, set_adapter, use_adapter
from pubsub_jobs.adapters.base import Adapter
from pubsub_jobs.adapters.memory import ImmediateAdapter, InMemoryAdapter
from pubsub_jobs.context import JobContext, current_job
from pubsub_jobs.errors import (
    BulkEnqueueError,
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
from pubsub_jobs.job import Job, enqueue_many, job
from pubsub_jobs.message import EnqueuedJob, JobMessage
from pubsub_jobs.middleware import Middleware
from pubsub_jobs.registry import Registry, default_registry
from pubsub_jobs.schedules import Schedule, schedule
from pubsub_jobs.settings import QueueOptions, Settings, configure, get_settings

__version__ = "0.1.0"

if typing.TYPE_CHECKING:
    from pubsub_jobs.adapters.pubsub import PubSubAdapter


def __getattr__(name: str) -> object:
    # The Pub/Sub client library is the heaviest import of all: loaded on first use, so
    # `import pubsub_jobs` (and the pytest plugin, in every project that has it) stays light.
    if name == "PubSubAdapter":
        from pubsub_jobs.adapters.pubsub import PubSubAdapter

        globals()[name] = PubSubAdapter
        return PubSubAdapter
    raise AttributeError(f"module 'pubsub_jobs' has no attribute {name!r}")

__all__ = [
    "Adapter",
    "BulkEnqueueError",
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
    "QueueOptions",
    "Registry",
    "Retry",
    "Schedule",
    "ScheduleTooFar",
    "Settings",
    "TopicNotFound",
    "TopologyDrift",
    "UnknownJob",
    "configure",
    "current_job",
    "default_registry",
    "enqueue_many",
    "get_adapter",
    "get_settings",
    "job",
    "schedule",
    "set_adapter",
    "use_adapter",
]
