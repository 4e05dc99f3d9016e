"""The adapters' one retry policy, and the errors an enqueue ends in.

Every Google API call an enqueue makes (a publish, each round of a bulk publish, a Cloud
Tasks ``create_task``) runs through :func:`call`: errors that
:func:`~pubsub_jobs.errors.is_transient` calls transient are tried again, up to
``Settings.publish_attempts`` attempts in all, after exponential waits with full jitter
(up to 0.25 s, doubling, at most 10 s: with the default 5 attempts an outage fails an enqueue
within about 4 s); any other error fails at once, as trying again only delays what a person
has to fix.

The first attempt runs without tenacity: it is the common case and on the publish path
that ``bench/`` measures. Only when it fails transiently does tenacity take over, replaying
that failure as its own first attempt, so counting, waits and logs are those of one policy.

:func:`enqueue_error` turns the error a call ended in into an
:class:`~pubsub_jobs.errors.EnqueueError` that says what to do, in the same words for a
Pub/Sub topic and for the Cloud Tasks queue of delayed jobs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from google.api_core import exceptions as gexc

from pubsub_jobs.errors import EnqueueError, TopicNotFound, describe, is_transient

if TYPE_CHECKING:
    from tenacity import RetryCallState, Retrying

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The first wait, in seconds; each further one may be twice as long, up to ``MAX_WAIT``.
FIRST_WAIT = 0.25
MAX_WAIT = 10.0


def retrying(
    attempts: int, what: str, *, sleep: Callable[[float], None] = time.sleep
) -> Retrying:
    """The policy as a tenacity ``Retrying``: ``attempts`` in all, transient errors only."""
    # tenacity loads with the first retry (a worker's start does not pay for it)
    from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

    return Retrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=FIRST_WAIT, max=MAX_WAIT),
        before_sleep=_log_retry(what, attempts),
        sleep=sleep,
        reraise=True,
    )


def call(
    fn: Callable[[], T],
    *,
    attempts: int,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``fn()``, tried again on transient errors under the policy; raises the last error.

    ``what`` names the call in the warnings logged before each wait.
    """
    try:
        return fn()
    except Exception as exc:
        if attempts < 2 or not is_transient(exc):
            raise
        first: BaseException | None = exc

    def replay() -> T:
        nonlocal first
        if first is not None:
            failed, first = first, None
            raise failed
        return fn()

    result: T = retrying(attempts, what, sleep=sleep)(replay)
    return result


def _log_retry(what: str, attempts: int) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: attempt %d of %d failed (%s); trying again in %.2f s",
            what, state.attempt_number, attempts, describe(exc) if exc else "?", wait,
        )

    return before_sleep


@dataclass(frozen=True, slots=True)
class Destination:
    """Where an enqueue was going, and what a person does when it cannot get there."""

    service: str
    #: ``topic projects/P/topics/T``, ``Cloud Tasks queue projects/P/locations/L/queues/Q``
    resource: str
    #: what the call does to it: ``publishing to``, ``creating a task in``
    action: str
    #: what the job would have been: ``enqueued``, ``scheduled``
    outcome: str
    #: how to create the resource, or which settings to check
    create: str
    #: which roles to grant
    grant: str
    #: why enqueueing again with the same job id is safe
    again: str
    #: the errors that mean the resource does not exist, and the error to raise then
    missing: tuple[type[BaseException], ...] = (gexc.NotFound,)
    missing_error: type[EnqueueError] = EnqueueError


def pubsub_topic(topic_path: str, queue: str, naming: str = "") -> Destination:
    """A queue's topic, as a publish's errors name it; ``naming`` is what
    :func:`~pubsub_jobs.settings.naming_hint` says of this process's settings."""
    check = (f" with the same settings: {naming}" if naming
             else ", or check PUBSUB_JOBS_PROJECT_ID and PUBSUB_JOBS_PREFIX")
    return Destination(
        service="Pub/Sub",
        resource=f"topic {topic_path}",
        action="publishing to",
        outcome="enqueued",
        create=f"`pubsub-jobs bootstrap --queue {queue}` (or Terraform){check}",
        grant="roles/pubsub.publisher on the topic to the application's service account",
        again="if the first publish did arrive, its job_id tells the duplicate apart",
        missing_error=TopicNotFound,
    )


def cloud_tasks_queue(queue_path: str) -> Destination:
    """The Cloud Tasks queue of delayed jobs, as a ``create_task``'s errors name it."""
    return Destination(
        service="Cloud Tasks",
        resource=f"Cloud Tasks queue {queue_path}",
        action="creating a task in",
        outcome="scheduled",
        create="`pubsub-jobs bootstrap --queue ...` while PUBSUB_JOBS_CLOUD_TASKS_LOCATION "
        "is set (or Terraform), or check PUBSUB_JOBS_CLOUD_TASKS_LOCATION and "
        "PUBSUB_JOBS_CLOUD_TASKS_QUEUE",
        grant="roles/cloudtasks.enqueuer on the queue and roles/iam.serviceAccountUser on "
        "PUBSUB_JOBS_CLOUD_TASKS_SERVICE_ACCOUNT to the application's identity",
        again="the task name derives from the job_id, so the job is not scheduled twice",
        missing=(gexc.NotFound, gexc.FailedPrecondition),
    )


def enqueue_error(
    exc: BaseException, to: Destination, *, attempts: int, timeout: float
) -> EnqueueError:
    """The error an enqueue raises when ``exc`` ended its calls: what failed, what to do."""
    if isinstance(exc, to.missing):
        return to.missing_error(
            f"{to.resource} does not exist ({describe(exc)}), so the job was not "
            f"{to.outcome}: create it with {to.create}"
        )
    if isinstance(exc, gexc.PermissionDenied):
        return EnqueueError(
            f"permission denied {to.action} {to.resource} ({describe(exc)}): grant "
            f"{to.grant}. The job was not {to.outcome}."
        )
    retried = attempts > 1 and is_transient(exc)
    tries = f" after retries ({attempts} attempts)" if retried else ""
    if isinstance(exc, TimeoutError | gexc.DeadlineExceeded):
        return EnqueueError(
            f"{to.service} did not confirm {to.action} {to.resource} within {timeout:g} s"
            f"{tries}; treat the job as not {to.outcome} and enqueue it again with the same "
            f"job_id (using(job_id=...)): {to.again}"
        )
    return EnqueueError(
        f"{to.action} {to.resource} failed{tries} ({describe(exc)}); the job was not "
        f"{to.outcome}" + (": try again later with the same job_id" if retried else "")
    )
