"""Every error pubsub-jobs raises derives from :class:`JobError`.

Built-in bases are mixed in where they fit, so ``except ValueError`` still works::

    JobError
    ├── ConfigurationError (ValueError)      a setting is missing or wrong
    ├── JobDefinitionError (TypeError)       @job cannot be applied, or a name is taken twice
    ├── UnknownJob (LookupError)             no job is registered under that name
    ├── DeadJobNotFound (LookupError)        no such job in a queue's dead set
    ├── InvalidArguments (ValueError)        arguments do not fit the job's signature/types
    ├── InvalidMessage (ValueError)          a message is not wire format v1
    ├── MessageTooLarge (ValueError)         a job exceeds a Pub/Sub or Cloud Tasks limit
    ├── ScheduleTooFar (ValueError)          a delayed job is due beyond Cloud Tasks' 30 days
    ├── InvalidSchedule (ValueError)         a periodic job's cron, time zone, arguments or name
    ├── EnqueueError                         publishing failed; the job is not enqueued
    │   ├── TopicNotFound (LookupError)      the queue's topic does not exist
    │   └── BulkEnqueueError                 some jobs of a bulk enqueue failed
    ├── CancelError                          Cloud Tasks refused or did not answer a cancel
    ├── TopologyDrift                        bootstrap found resources set up differently
    ├── JobFailed                            the immediate adapter ran a job that failed
    ├── StreamFailed (RuntimeError)          a worker's streaming pull ended; says what to do
    ├── PushRefused                          a push request refused before any job runs (4xx/503)
    ├── EmulatorError (RuntimeError)         a local emulator could not start or stop
    │   └── EmulatorAlreadyRunning           an emulator already answers on that port
    └── Retry                                raised by a job: run me again after ``delay``

The Google API errors a publish can meet are sorted once, in :func:`is_transient`.

The root and the two errors of the wire format are defined in ``_errors.py``, which the
message, context and outcome modules import: this module names their types, for
:class:`BulkEnqueueError` and :class:`JobFailed`. Import every error from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING

from pubsub_jobs._errors import InvalidMessage as InvalidMessage
from pubsub_jobs._errors import JobError as JobError
from pubsub_jobs._errors import MessageTooLarge as MessageTooLarge
from pubsub_jobs._errors import describe as describe

if TYPE_CHECKING:
    from pubsub_jobs.message import EnqueuedJob, JobMessage
    from pubsub_jobs.outcome import Outcome


class ConfigurationError(JobError, ValueError):
    """A setting is missing or invalid; the message names it."""


class JobDefinitionError(JobError, TypeError):
    """``@job`` was used on something it cannot run, or a job name is registered twice."""


class UnknownJob(JobError, LookupError):
    """No job is registered under the name."""


class DeadJobNotFound(JobError, LookupError):
    """No dead job with that job id (or message id) is in the queue's dead set."""


class InvalidArguments(JobError, ValueError):
    """The arguments do not fit the job's signature or its type hints."""


class ScheduleTooFar(JobError, ValueError):
    """A delayed job is due further ahead than Cloud Tasks can hold it (30 days)."""


class InvalidSchedule(JobError, ValueError):
    """A periodic job cannot be declared: a bad cron expression, an unknown time zone,
    arguments that do not fit the job, or a schedule name taken twice. The message names
    the schedule."""


class EnqueueError(JobError):
    """The job could not be published; it is not enqueued."""


class TopicNotFound(EnqueueError, LookupError):
    """The queue's topic does not exist."""


class BulkEnqueueError(EnqueueError):
    """Some jobs of a bulk enqueue were not published.

    ``enqueued`` holds the jobs Pub/Sub confirmed, ``failed`` the messages that were not
    published with the exception of each; enqueueing ``failed`` again is safe.
    """

    def __init__(
        self,
        message: str,
        enqueued: Sequence[EnqueuedJob],
        failed: Sequence[tuple[JobMessage, BaseException]],
    ) -> None:
        super().__init__(message)
        self.enqueued = list(enqueued)
        self.failed = list(failed)


class CancelError(JobError):
    """A cancel could not be done: Cloud Tasks refused the call (a permission missing) or did
    not answer; the job was not cancelled and may still run. The message says what to do."""


class TopologyDrift(JobError):
    """An existing topic or subscription is configured differently from the settings."""

    def __init__(self, message: str, differences: Sequence[str]) -> None:
        super().__init__(message)
        self.differences = list(differences)


class JobFailed(JobError):
    """An immediately performed job did not succeed; ``outcome`` says how."""

    def __init__(self, message: str, outcome: Outcome) -> None:
        super().__init__(message)
        self.outcome = outcome


class StreamFailed(JobError, RuntimeError):
    """A worker's streaming pull ended (a missing subscription, an outage); the message
    says what to do."""


class PushRefused(JobError):
    """The push endpoint refuses a request before any job runs: ``status`` is the HTTP
    answer (400 not a push envelope, 401 no valid token, 403 the wrong audience or account,
    404 a queue not served here, 405 not a POST, 413 too large, 503 certificates out of
    reach). The message says why, for the log; the caller gets the status alone."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class EmulatorError(JobError, RuntimeError):
    """A local emulator could not be found, started or stopped."""


class EmulatorAlreadyRunning(EmulatorError):
    """A ready emulator already answers on the requested host and port (``host``)."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


class Retry(JobError):
    """Raised by a job to be run again after ``delay`` (a timedelta or seconds).

    The retry counts toward the job's ``max_attempts``; once they are used up the job is
    dead-lettered (reason ``max_attempts``). A delay is held by Cloud Tasks, so it may be far
    longer than Pub/Sub's 600 s backoff; without one (or with zero) the message is nacked and
    Pub/Sub redelivers it after the subscription's backoff.
    """

    def __init__(self, message: str = "", *, delay: timedelta | float | None = None) -> None:
        super().__init__(message or "retry requested")
        if isinstance(delay, int | float):
            delay = timedelta(seconds=delay)
        self.delay: timedelta | None = delay


@cache
def _transient() -> tuple[type[BaseException], ...]:
    """Errors that may pass when the same call is made again: the status codes Google's own
    Pub/Sub client retries a publish on (unavailable, deadline, internal, quota, aborted,
    cancelled, unknown), their HTTP forms, and a connection that dropped or timed out.

    Built on first use: the errors (and so ``import pubsub_jobs``) load no Google library.
    """
    from google.api_core import exceptions as gexc

    return (
        gexc.ServiceUnavailable,
        gexc.DeadlineExceeded,
        gexc.InternalServerError,
        gexc.TooManyRequests,
        gexc.ResourceExhausted,
        gexc.Aborted,
        gexc.Cancelled,
        gexc.Unknown,
        gexc.GatewayTimeout,
        gexc.BadGateway,
        gexc.RetryError,
        ConnectionError,
        TimeoutError,
    )


def is_transient(exc: BaseException) -> bool:
    """Whether a Google API call that raised ``exc`` may succeed when made again.

    The adapters' one retry policy (``pubsub_jobs/adapters/_retry.py``) retries exactly
    these, for a publish, a bulk publish and a Cloud Tasks ``create_task``. Every other
    error is terminal (not found, already exists, permission denied, invalid argument) and
    fails at once: trying again only delays the error a person has to act on.
    """
    return isinstance(exc, _transient())
