"""Perform one message: decode it, look the job up, run it, and decide what to do with it.

This is the whole policy of the decision table, shared by every delivery path (the pull
worker, the push endpoint, the in-memory adapter); it never touches Pub/Sub itself.
:func:`pubsub_jobs.delivery.settle` then stores what the :class:`~pubsub_jobs.outcome.Outcome`
needs and says whether the delivery is done with.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Coroutine, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from pubsub_jobs._async_runner import AsyncRunner
from pubsub_jobs.context import JobContext, _current
from pubsub_jobs.cron.schedules import SCHEDULE_ATTRIBUTE, scheduled_delivery, schedules_for
from pubsub_jobs.delivery import Delivery
from pubsub_jobs.errors import InvalidArguments, InvalidMessage, Retry, UnknownJob, describe
from pubsub_jobs.iteration import iteration, run_stretch
from pubsub_jobs.jobs import Registry, default_registry
from pubsub_jobs.message import DecodedMessage, JobMessage, decode_fields
from pubsub_jobs.outcome import Action, Outcome, Reason, job_fields, previous_attempts
from pubsub_jobs.settings import Settings, get_settings

if TYPE_CHECKING:
    from pubsub_jobs.cron.schedules import ScheduledDelivery
    from pubsub_jobs.jobs import Job

log = logging.getLogger(__name__)


class PerformHooks(Protocol):
    """What :class:`Performer` calls around a job: the middleware's perform hooks
    (:class:`pubsub_jobs.middleware.MiddlewareChain` is one), declared here so the core does
    not import the middleware that builds on it."""

    def __bool__(self) -> bool: ...

    def before_perform(self, context: JobContext) -> None: ...

    def perform_context(self, context: JobContext) -> AbstractContextManager[Any]: ...

    def after_perform(self, context: JobContext, outcome: Outcome) -> None: ...

    def on_rejected(
        self, queue: str, attributes: Mapping[str, str], outcome: Outcome
    ) -> None: ...


class NoHooks:
    """No middleware: every hook does nothing."""

    def __bool__(self) -> bool:
        return False

    def before_perform(self, context: JobContext) -> None:
        return None

    def perform_context(self, context: JobContext) -> AbstractContextManager[Any]:
        return nullcontext()

    def after_perform(self, context: JobContext, outcome: Outcome) -> None:
        return None

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        return None


class Performer:
    """Turns a message into an :class:`Outcome` by running its job."""

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        middleware: PerformHooks | None = None,
        async_runner: AsyncRunner | None = None,
        *,
        log_outcomes: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else default_registry
        self.settings = settings or get_settings()
        self.middleware = middleware if middleware is not None else NoHooks()
        self.async_runner = async_runner or AsyncRunner()
        #: Log failures here; off when a middleware logs every job already (no line twice).
        self.log_outcomes = log_outcomes
        #: Set by a delivery path that is stopping: iterating jobs checkpoint after the item
        #: they are on.
        self.stopping = threading.Event()
        self.schedules = schedules_for(self.registry)
        self._max_decoded = self.settings.max_decoded_message_mb * 2**20
        self._queue_limits: dict[str, int] = {}

    @property
    def middleware(self) -> PerformHooks:
        return self._middleware

    @middleware.setter
    def middleware(self, hooks: PerformHooks) -> None:
        self._middleware = hooks
        self._hooks = bool(hooks)  # asked once: the hot path skips empty hooks

    def perform(self, delivery: Delivery) -> Outcome:
        """Run the job of one delivery and say what to do with it; the decoded message is
        kept on ``delivery.decoded`` for settling.

        ``delivery.publish_time`` (Pub/Sub's, default now) gives a scheduled message (one
        with a ``schedule`` attribute, as Cloud Scheduler publishes it) its slot, hence its
        job id.
        """
        attributes = delivery.attributes
        queue = delivery.queue
        message_id = delivery.message_id
        scheduled = None
        if SCHEDULE_ATTRIBUTE in attributes:
            scheduled = scheduled_delivery(attributes, delivery.publish_time, self.schedules)
        try:
            message = delivery.decoded = decode_fields(
                delivery.data, attributes if scheduled is None else scheduled.attributes,
                self._max_decoded,
            )
        except InvalidMessage as exc:
            return self._rejected(Reason.INVALID_MESSAGE, exc, attributes, queue)
        job = self.registry.find(message.job_name)
        if job is None:
            try:
                job = self.registry.get(message.job_name)  # raises UnknownJob, saying why
            except UnknownJob as exc:
                return self._rejected(Reason.UNKNOWN_JOB, exc, attributes, queue)
        try:
            args, kwargs = job.codec.decode(message.args, message.kwargs)
        except Exception as exc:  # InvalidArguments, or a validator's own error type
            error = exc if isinstance(exc, InvalidArguments) else InvalidArguments(describe(exc))
            return self._rejected(Reason.INVALID_ARGUMENTS, error, attributes, queue)
        if queue and message.queue != queue:
            log.warning("message %s names queue %r but came from queue %r's subscription; "
                        "queue %r decides its retries and dead letters", message_id,
                        message.queue, queue, queue)
        queue = queue or message.queue
        attempt = delivery.attempt or 1
        if message.attributes:
            attempt += previous_attempts(message.attributes)
        max_attempts = (job.max_attempts or self._queue_limits.get(queue)
                        or self._max_delivery_attempts(queue))
        chain, hooks = self.middleware, self._hooks
        context: JobContext | None = None
        if hooks or job.is_async or job.is_iterating:
            context = _job_context(message, queue, attempt, max_attempts, message_id, scheduled)
            if hooks:
                chain.before_perform(context)
        started = time.perf_counter()
        # The hot path (a sync job, no middleware) builds the context only if the job asks
        # for it (current_job()) or its failure is logged.
        token = _current.set(context or partial(
            _job_context, message, queue, attempt, max_attempts, message_id, scheduled))
        outcome: Outcome | None = None
        try:
            if context is None:
                job.fn(*args, **kwargs)
            elif job.is_iterating:
                outcome = run_stretch(job, args, kwargs, context, JobMessage(*message),
                                      chain=chain, async_runner=self.async_runner,
                                      stopping=self.stopping)
            elif job.is_async:
                self.async_runner.run(_with_context(context, job.fn(*args, **kwargs), chain))
            else:
                with chain.perform_context(context):
                    job.fn(*args, **kwargs)
        except BaseException as exc:  # noqa: B036 - SystemExit from a job is one failed attempt
            outcome = _failure(exc, job, attempt, max_attempts)
        finally:
            _current.reset(token)
        duration = time.perf_counter() - started
        if outcome is None:
            outcome = Outcome(Action.ACK, Reason.SUCCEEDED, None, duration, None, attempt)
        elif outcome.action is Action.RESCHEDULE and delivery.ordering_key:
            # Held in Cloud Tasks, the job would come back behind the later jobs of its
            # key: retried in place instead (the worker waits ``delay`` first).
            outcome = replace(outcome, action=Action.NACK, duration=duration, attempt=attempt)
        else:
            outcome = replace(outcome, duration=duration, attempt=attempt)
        if self.log_outcomes and (outcome.error is not None or log.isEnabledFor(logging.DEBUG)):
            if context is None:
                context = _job_context(message, queue, attempt, max_attempts, message_id,
                                       scheduled)
            _log_outcome(context, outcome)
        if hooks and context is not None:
            try:
                chain.after_perform(context, outcome)
            except Exception:
                # The job has run (or failed) already: what it did stands, so the outcome
                # stays; running it again would repeat its effects.
                log.exception("after_perform of %s %s raised; the job's outcome (%s) stands",
                              context.job_name, context.job_id, outcome.reason.value)
        return outcome

    def _max_delivery_attempts(self, queue: str) -> int:
        """The queue's ``max_delivery_attempts`` from the settings, looked up once."""
        limit = self._queue_limits.get(queue)
        if limit is None:
            limit = self._queue_limits[queue] = self.settings.queue_options(
                queue).max_delivery_attempts
        return limit

    def _rejected(
        self, reason: Reason, exc: BaseException, attributes: Mapping[str, str], queue: str | None
    ) -> Outcome:
        """Dead-letter a message no job can run, and tell the middleware (no context exists)."""
        outcome = _dead(reason, exc)
        if self.middleware:
            try:
                self.middleware.on_rejected(queue or attributes.get("queue_name", ""),
                                            attributes, outcome)
            except Exception:
                log.exception("on_rejected raised; the message is dead-lettered all the same")
        return outcome

    def close(self) -> None:
        self.async_runner.close()


async def _with_context(
    context: JobContext, coro: Coroutine[Any, Any, Any], chain: PerformHooks
) -> Any:
    """Run an async job in the event loop's task with its context and the middleware's
    ``perform_context`` active there (context variables do not cross from the job thread)."""
    _current.set(context)
    with chain.perform_context(context):
        return await coro


def _job_context(
    message: DecodedMessage, queue: str, attempt: int, max_attempts: int, message_id: str | None,
    scheduled: ScheduledDelivery | None,
) -> JobContext:
    return JobContext(
        job_id=message.job_id, job_name=message.job_name, queue=queue, attempt=attempt,
        max_attempts=max_attempts, enqueued_at=message.enqueued_at,
        scheduled_at=message.scheduled_at, message_id=message_id,
        schedule=scheduled.schedule if scheduled is not None else None,
        slot=scheduled.slot if scheduled is not None else None,
        iteration=iteration(message.attributes) if message.attributes else 0,
        attributes=message.attributes,
    )


def _dead(reason: Reason, exc: BaseException) -> Outcome:
    log.error("dead-lettering a message (%s): %s", reason.value, exc)
    return Outcome(Action.DEAD_LETTER, reason, exc)


def _failure(exc: BaseException, job: Job[Any, Any], attempt: int, max_attempts: int) -> Outcome:
    if isinstance(exc, Retry):  # asked for by the job itself: always retryable
        delay = exc.delay
    else:
        if job.discard_on and isinstance(exc, job.discard_on):
            return Outcome(Action.ACK, Reason.DISCARDED, exc)
        if job.retry_on is not None and not isinstance(exc, job.retry_on):
            return Outcome(Action.DEAD_LETTER, Reason.NOT_RETRYABLE, exc)
        try:
            delay = job.retry_delay(attempt)
        except Exception:
            log.exception("retry_wait of %s failed; retrying after the subscription's backoff",
                          job.name)
            delay = None
    if attempt >= max_attempts:
        return Outcome(Action.DEAD_LETTER, Reason.MAX_ATTEMPTS, exc)
    if delay is not None and delay > timedelta(0):
        return Outcome(Action.RESCHEDULE, Reason.RETRY, exc, delay=delay)
    return Outcome(Action.NACK, Reason.RETRY, exc)


def _log_outcome(context: JobContext, outcome: Outcome) -> None:
    if outcome.error is None and not log.isEnabledFor(logging.DEBUG):
        return  # the hot path: nothing to build
    extra = job_fields(context, outcome)
    if outcome.error is None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s succeeded in %.3fs", context.job_name, context.job_id,
                      outcome.duration, extra=extra)
        return
    level = logging.INFO if outcome.reason is Reason.DISCARDED else logging.WARNING
    log.log(
        level,
        "%s %s attempt %d/%d: %s -> %s",
        context.job_name,
        context.job_id,
        context.attempt,
        context.max_attempts,
        describe(outcome.error),
        outcome.reason.value,
        exc_info=outcome.error if outcome.action is Action.DEAD_LETTER else None,
        extra=extra,
    )
