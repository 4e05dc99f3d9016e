"""What becomes of one delivery: an :class:`Outcome` (an :class:`Action` and its
:class:`Reason`), and the attributes a dead-lettered or rescheduled copy carries.

:func:`pubsub_jobs.perform.Performer.perform` decides the outcome; a delivery path (the pull
worker, the push endpoint, the in-memory adapter) carries it out its own way.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from pubsub_jobs._errors import describe
from pubsub_jobs.context import JobContext
from pubsub_jobs.message import JobMessage, format_time, truncate_utf8, utcnow

log = logging.getLogger(__name__)

#: Attribute of a rescheduled job (long-wait retry): attempts made before this message.
PREVIOUS_ATTEMPTS = "previous_attempts"
#: Attribute of a rescheduled job: the Pub/Sub message id of the delivery it continues. Its
#: Cloud Tasks name derives from it, so redeliveries of one message schedule it once, and
#: no later schedule (after a retry from the dead set, say) meets an earlier one's name.
RESCHEDULED_FROM = "rescheduled_from"


class Action(enum.Enum):
    ACK = "ack"
    NACK = "nack"
    DEAD_LETTER = "dead_letter"
    RESCHEDULE = "reschedule"
    """Schedule the job again after ``Outcome.delay`` (Cloud Tasks), then ack."""
    CONTINUE = "continue"
    """An iterating job checkpointed: publish ``Outcome.continuation``, then ack."""


class Reason(enum.StrEnum):
    """Why a message was settled the way it was; dead-letter reasons travel as attributes."""

    SUCCEEDED = "succeeded"
    CHECKPOINT = "checkpoint"
    DISCARDED = "discarded"
    RETRY = "retry"
    MAX_ATTEMPTS = "max_attempts"
    NOT_RETRYABLE = "not_retryable"
    INVALID_MESSAGE = "invalid_message"
    UNKNOWN_JOB = "unknown_job"
    INVALID_ARGUMENTS = "invalid_arguments"


@dataclass(slots=True)
class Outcome:
    """What to do with a message, and why. Treat it as immutable (``dataclasses.replace``
    makes a changed copy); it is not frozen only because a frozen dataclass takes three times
    as long to build, and the worker builds one per job."""

    action: Action
    reason: Reason
    error: BaseException | None = None
    duration: float = 0.0
    #: How long a RESCHEDULE waits.
    delay: timedelta | None = None
    #: The attempt this was, counting the attempts before a reschedule (1 for the first run).
    attempt: int | None = None
    #: What a CONTINUE publishes: the same job, resuming after the last cursor it yielded.
    continuation: JobMessage | None = None
    #: Items an iterating job finished in this run.
    items: int = 0

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


def rescheduled(message: JobMessage, outcome: Outcome, message_id: str | None) -> JobMessage:
    """The message that runs ``message`` again after a RESCHEDULE outcome: same job id, due
    after ``outcome.delay``, carrying the attempts made so far and the id of the delivery
    it continues (``message_id``, when there is one)."""
    attributes = {**message.attributes, PREVIOUS_ATTEMPTS: str(outcome.attempt or 1)}
    if message_id:
        attributes[RESCHEDULED_FROM] = message_id
    return replace(
        message, scheduled_at=utcnow() + (outcome.delay or timedelta(0)), attributes=attributes
    )


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
