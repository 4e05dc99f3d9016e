"""What a delivery path stores before it may ack: a dead-letter copy, or a rescheduled job.

The pull worker and the push endpoint carry out an :class:`~pubsub_jobs.outcome.Outcome`
differently (ack/nack, or an HTTP status), but a ``DEAD_LETTER`` or ``RESCHEDULE`` outcome
first needs something published; :class:`OutcomeStore` does that and answers whether it is
safely stored. When it is not, the caller must have Pub/Sub redeliver the message (nack or
5xx): nothing is acked without being run or kept where a person can see it.

The queue is always the subscription's (the one the message was delivered on), never the
message's ``queue_name`` attribute, which anyone who can publish may set to anything.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace

from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.errors import MessageTooLarge, describe
from pubsub_jobs.message import JobMessage, check_limits
from pubsub_jobs.outcome import Outcome, dead_letter_attributes, rescheduled
from pubsub_jobs.settings import Settings

log = logging.getLogger("pubsub_jobs.worker")


class OutcomeStore:
    """Publishes dead-letter copies and rescheduled jobs for one worker or push server."""

    def __init__(self, adapter: PubSubAdapter, settings: Settings) -> None:
        self.adapter = adapter
        self.settings = settings

    def dead_letter(
        self,
        queue: str,
        data: bytes,
        attributes: Mapping[str, str],
        outcome: Outcome,
        delivery_attempt: int | None,
        message_id: str,
    ) -> bool:
        """Publish the dead-letter copy to ``queue``'s dead-letter topic; True once Pub/Sub
        confirmed it."""
        copy = dead_letter_attributes(attributes, outcome, outcome.attempt or delivery_attempt)
        topic = self.settings.dead_letter_topic_path(queue)
        try:
            # Pub/Sub refuses a copy beyond its limits (the emulator does not): e.g. 97+
            # attributes plus our 4. The subscription's policy forwards it after its last
            # delivery attempt instead.
            check_limits(data, copy, what="its dead-letter copy")
        except MessageTooLarge as exc:
            log.error("message %s cannot be dead-lettered by the worker: %s; leaving it to the "
                      "subscription's dead-letter policy after its last delivery attempt",
                      message_id, exc)
            return False
        try:
            self.adapter.publish_raw(topic, data, copy).result(
                timeout=self.settings.publish_timeout
            )
        except Exception as exc:
            log.error("could not dead-letter message %s to %s (%s); nacking it so it is not "
                      "lost", message_id, topic, describe(exc))
            return False
        return True

    def reschedule(
        self, queue: str, data: bytes, attributes: Mapping[str, str], outcome: Outcome,
        message_id: str,
    ) -> bool:
        """Hold the job in Cloud Tasks for ``outcome.delay``, on ``queue``; True once Cloud
        Tasks confirmed it."""
        try:
            job = JobMessage.decode(data, attributes)
            self.adapter.schedule(rescheduled(replace(job, queue=queue), outcome, message_id))
        except Exception as exc:
            log.error("could not reschedule message %s (%s); nacking it so Pub/Sub "
                      "redelivers it",
                      message_id, describe(exc))
            return False
        return True

    def continue_job(self, queue: str, outcome: Outcome, message_id: str) -> bool:
        """Publish an iterating job's continuation (``outcome.continuation``) to ``queue``;
        True once Pub/Sub confirmed it. Until then the running message must not be acked:
        if this fails, the stretch runs again from the previous checkpoint."""
        if outcome.continuation is None:
            log.error("message %s checkpointed without a continuation; nacking it", message_id)
            return False
        try:
            self.adapter.publish(replace(outcome.continuation, queue=queue))
        except Exception as exc:
            log.error("could not publish the continuation of message %s (%s); nacking it so "
                      "the job resumes from its previous checkpoint", message_id, describe(exc))
            return False
        return True
