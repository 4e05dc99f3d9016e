"""Perform one message: decode it, look the job up, run it, and decide what to do with it.

This is the worker's whole policy, shared by the Pub/Sub worker and the in-memory adapter;
it never touches Pub/Sub itself. The caller carries out the :class:`Outcome`: ack, nack, or
publish a dead-letter copy (:func:`dead_letter_attributes`) and then ack.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import threading
import time
from collections.abc import Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pubsub_jobs.context import JobContext, _current
from pubsub_jobs.errors import InvalidArguments, InvalidMessage, Retry, UnknownJob, describe
from pubsub_jobs.message import JobMessage, format_time, truncate_utf8, utcnow
from pubsub_jobs.middleware import MiddlewareChain
from pubsub_jobs.registry import Registry, default_registry
from pubsub_jobs.settings import Settings, get_settings

if TYPE_CHECKING:
    from pubsub_jobs.job import Job

log = logging.getLogger("pubsub_jobs.worker")

#: Attribute of a rescheduled job (long-wait retry): attempts made before this message.
PREVIOUS_ATTEMPTS = "previous_attempts"


class Action(enum.Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"
    RESCHEDULE = "reschedule"
    """Schedule the job again after ``Outcome.delay`` (Cloud Tasks), then ack."""


class Reason(enum.StrEnum):
    """Why a message was settled the way it was; dead-letter reasons travel as attributes."""

    SUCCEEDED = "succeeded"
    DISCARDED = "discarded"
    RETRY = "retry"
    MAX_ATTEMPTS = "max_attempts"
    NOT_RETRYABLE = "not_retryable"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_JOB = "unknown_job"
    INVALID_ARGUMENTS = "invalid_arguments"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a message, and why."""

    action: Action
    reason: Reason
    error: BaseException | None = None
    duration: float = 0.0
    #: How long a RESCHEDULE waits.
    delay: timedelta | None = None
    #: The attempt this was, counting the attempts before a reschedule (1 for the first run).
    attempt: int | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None and self.reason is not Reason.DISCARDED


#: Attributes a dead-lettered copy gets, and a retry from the dead set drops again. The
#: attempts before a reschedule are among them: ``delivery_attempt`` has the total, and a
#: job retried from the dead set starts with its attempts afresh.
DEAD_LETTER_ATTRIBUTES = (
    "dead_letter_reason",
    "dead_letter_error",
    "dead_lettered_at",
    "delivery_attempt",
    PREVIOUS_ATTEMPTS,
)


def dead_letter_attributes(
    attributes: Mapping[str, str], outcome: Outcome, delivery_attempt: int | None
) -> dict[str, str]:
    """The original attributes plus why and when the copy was dead-lettered."""
    copy = {k: v for k, v in attributes.items() if k not in DEAD_LETTER_ATTRIBUTES}
    copy["dead_letter_reason"] = outcome.reason.value
    copy["dead_letter_error"] = truncate_utf8(describe(outcome.error) if outcome.error else "")
    copy["dead_lettered_at"] = format_time(utcnow())
    copy["delivery_attempt"] = str(delivery_attempt or 1)
    return copy


def previous_attempts(attributes: Mapping[str, str]) -> int:
    """Attempts made before this message was rescheduled (0 for a job never rescheduled)."""
    text = attributes.get(PREVIOUS_ATTEMPTS)
    if not text:
        return 0
    try:
        return max(0, int(text))
    except ValueError:
        log.warning("ignoring attribute %s=%r: not a number", PREVIOUS_ATTEMPTS, text)
        return 0


def rescheduled(message: JobMessage, outcome: Outcome) -> JobMessage:
    """The message that runs ``message`` again after a RESCHEDULE outcome: same job id, due
    after ``outcome.delay``, carrying the attempts made so far."""
    return replace(
        message,
        scheduled_at=utcnow() + (outcome.delay or timedelta(0)),
        attributes={**message.attributes, PREVIOUS_ATTEMPTS: str(outcome.attempt or 1)},
    )


class AsyncRunner:
    """One event loop in a daemon thread, where ``async def`` jobs run.

    Job threads hand coroutines over and wait for their result, so a sync and an async job
    are settled the same way.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._ensure_loop())
        return future.result()

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="pubsub-jobs-async", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            if not thread.is_alive():
                loop.close()


class Performer:
    """Turns a message into an :class:`Outcome` by running its job."""

    def __init__(
        self,
        registry: Registry | None = None,
        settings: Settings | None = None,
        middleware: MiddlewareChain | None = None,
        async_runner: AsyncRunner | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_registry
        self.settings = settings or get_settings()
        self.middleware = middleware or MiddlewareChain()
        self.async_runner = async_runner or AsyncRunner()

    def perform(
        self,
        data: bytes,
        attributes: Mapping[str, str],
        delivery_attempt: int | None = None,
        message_id: str | None = None,
        queue: str | None = None,
    ) -> Outcome:
        try:
            message = JobMessage.decode(data, attributes)
        except InvalidMessage as exc:
            return self._rejected(Reason.INVALID_MESSAGE, exc, attributes, queue)
        try:
            job = self.registry.get(message.job_name)
        except UnknownJob as exc:
            return self._rejected(Reason.UNKNOWN_JOB, exc, attributes, queue)
        try:
            args, kwargs = job.codec.decode(message.args, message.kwargs)
        except InvalidArguments as exc:
            return self._rejected(Reason.INVALID_ARGUMENTS, exc, attributes, queue)
        attempt = previous_attempts(message.attributes) + (delivery_attempt or 1)
        max_attempts = job.max_attempts or self.settings.queue_options(
            queue or message.queue
        ).max_delivery_attempts
        context = JobContext(
            job_id=message.job_id,
            job_name=message.job_name,
            queue=queue or message.queue,
            attempt=attempt,
            max_attempts=max_attempts,
            enqueued_at=message.enqueued_at,
            scheduled_at=message.scheduled_at,
            message_id=message_id,
            attributes=message.attributes,
        )
        chain = self.middleware
        if chain:
            chain.before_perform(context)
        started = time.perf_counter()
        token = _current.set(context)
        try:
            if job.is_async:
                self.async_runner.run(_with_context(context, job.fn(*args, **kwargs), chain))
            elif chain:
                with chain.perform_context(context):
                    job.fn(*args, **kwargs)
            else:
                job.fn(*args, **kwargs)
        except Exception as exc:
            outcome = _failure(exc, job, attempt, max_attempts)
        else:
            outcome = Outcome(Action.ACK, Reason.SUCCEEDED)
        finally:
            _current.reset(token)
        outcome = replace(outcome, duration=time.perf_counter() - started, attempt=attempt)
        _log_outcome(context, outcome)
        if chain:
            chain.after_perform(context, outcome)
        return outcome

    def _rejected(
        self, reason: Reason, exc: BaseException, attributes: Mapping[str, str], queue: str | None
    ) -> Outcome:
        """Dead-letter a message no job can run, and tell the middleware (no context exists)."""
        outcome = _dead(reason, exc)
        if self.middleware:
            self.middleware.on_rejected(queue or attributes.get("queue_name", ""), attributes,
                                        outcome)
        return outcome

    def close(self) -> None:
        self.async_runner.close()


async def _with_context(
    context: JobContext, coro: Coroutine[Any, Any, Any], chain: MiddlewareChain
) -> Any:
    """Run an async job in the event loop's task with its context and the middleware's
    ``perform_context`` active there (context variables do not cross from the job thread)."""
    _current.set(context)
    with chain.perform_context(context):
        return await coro


def _dead(reason: Reason, exc: BaseException) -> Outcome:
    log.error("dead-lettering a message (%s): %s", reason.value, exc)
    return Outcome(Action.DEAD_LETTER, reason, exc)


def _failure(exc: Exception, job: Job[Any, Any], attempt: int, max_attempts: int) -> Outcome:
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


def job_fields(context: JobContext, outcome: Outcome) -> dict[str, Any]:
    """The structured fields of one performed job."""
    fields: dict[str, Any] = {
        "job_id": context.job_id,
        "job_name": context.job_name,
        "queue": context.queue,
        "attempt": context.attempt,
        "duration": round(outcome.duration, 6),
        "outcome": outcome.reason.value,
    }
    if outcome.error is not None:
        fields["error"] = describe(outcome.error)
    return fields


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
