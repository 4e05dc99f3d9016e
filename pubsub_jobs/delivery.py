"""One delivery of a message, and what settling its :class:`~pubsub_jobs.outcome.Outcome`
stores: the one place every delivery path (the pull worker, the push endpoint, the
in-memory adapter) goes through after :class:`~pubsub_jobs.perform.Performer` decided.

- :class:`Delivery`: what arrived (data, attributes, message id, Pub/Sub's delivery attempt,
  publish time, the queue it was delivered on) and, once :meth:`Performer.perform` decoded
  it, the decoded message, so nothing decodes it twice.
- :func:`settle`: stores what the outcome needs (a dead-letter copy, a rescheduled job in
  Cloud Tasks, an iterating job's continuation) through a :class:`DeliveryStore`, and says
  whether the delivery is done with. The paths only translate that: the worker into ack or
  nack, push into 204 or 503, the in-memory adapter into its queue.
- :class:`DeliveryStats`: one set of counters for every path, counting what was stored,
  not what was decided.

The queue is always the one the message was delivered on, never its ``queue_name``
attribute, which anyone who can publish may set to anything. Nothing is done with until it
ran or its copy is stored where a person can see it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from pubsub_jobs.errors import MessageTooLarge, describe
from pubsub_jobs.message import DecodedMessage, JobMessage, check_limits
from pubsub_jobs.outcome import Action, Outcome, dead_letter_attributes, rescheduled

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Delivery:
    """One delivery of one message on ``queue``'s subscription (or the in-memory queue)."""

    data: bytes
    attributes: Mapping[str, str]
    message_id: str | None
    #: Pub/Sub's delivery attempt (None where it sends none).
    attempt: int | None
    queue: str
    publish_time: datetime | None = None
    #: The decoded message, set by :meth:`~pubsub_jobs.perform.Performer.perform` once it
    #: decoded one (None for a message that could not be decoded).
    decoded: DecodedMessage | None = None
    #: The message's Pub/Sub ordering key ("" without one): such a job is never
    #: rescheduled through Cloud Tasks, which would move it behind the later jobs of its key.
    ordering_key: str = ""


class DeliveryStore(Protocol):
    """Where settling stores what an outcome needs; each call returns once the copy is
    safely stored and raises otherwise."""

    def store_dead_letter(self, queue: str, data: bytes, attributes: dict[str, str]) -> None:
        """Keep a dead-letter copy on ``queue``'s dead-letter topic (or list)."""

    def store_scheduled(self, message: JobMessage) -> None:
        """Hold ``message`` until its ``scheduled_at`` (Cloud Tasks)."""

    def store_published(self, message: JobMessage) -> None:
        """Publish ``message`` to its queue now."""


def settle(delivery: Delivery, outcome: Outcome, store: DeliveryStore) -> bool:
    """Store what ``outcome`` needs stored; True when the delivery is done with (ack it,
    answer 204), False when Pub/Sub must deliver it again (nack, 5xx)."""
    action = outcome.action
    if action is Action.ACK:
        return True
    if action is Action.NACK:
        return False
    if action is Action.CONTINUE:
        return _continue(delivery, outcome, store)
    if action is Action.RESCHEDULE:
        return _reschedule(delivery, outcome, store)
    return _dead_letter(delivery, outcome, store)


def _dead_letter(delivery: Delivery, outcome: Outcome, store: DeliveryStore) -> bool:
    copy = dead_letter_attributes(delivery.attributes, outcome,
                                  outcome.attempt or delivery.attempt)
    try:
        # Pub/Sub refuses a copy beyond its limits (the emulator does not): e.g. 97+
        # attributes plus our 4. The subscription's policy forwards it after its last
        # delivery attempt instead.
        check_limits(delivery.data, copy, what="its dead-letter copy")
    except MessageTooLarge as exc:
        log.error("message %s cannot be dead-lettered by the worker: %s; leaving it to the "
                  "subscription's dead-letter policy after its last delivery attempt",
                  delivery.message_id, exc)
        return False
    try:
        store.store_dead_letter(delivery.queue, delivery.data, copy)
    except Exception as exc:
        log.error("could not dead-letter message %s of queue %s (%s); nacking it so it is "
                  "not lost", delivery.message_id, delivery.queue, describe(exc))
        return False
    return True


def _reschedule(delivery: Delivery, outcome: Outcome, store: DeliveryStore) -> bool:
    """Hold the job in Cloud Tasks for ``outcome.delay``; done once that is confirmed."""
    try:
        if delivery.decoded is None:  # perform reschedules only what it decoded
            raise ValueError("the message was not decoded")
        job = replace(JobMessage(*delivery.decoded), queue=delivery.queue)
        store.store_scheduled(rescheduled(job, outcome, delivery.message_id))
    except Exception as exc:
        log.error("could not reschedule message %s (%s); nacking it so Pub/Sub redelivers it",
                  delivery.message_id, describe(exc))
        return False
    return True


def _continue(delivery: Delivery, outcome: Outcome, store: DeliveryStore) -> bool:
    """Publish an iterating job's continuation; until then the running message is not done
    with: if this fails, the stretch runs again from the previous checkpoint."""
    if outcome.continuation is None:
        log.error("message %s checkpointed without a continuation; nacking it",
                  delivery.message_id)
        return False
    try:
        store.store_published(replace(outcome.continuation, queue=delivery.queue))
    except Exception as exc:
        log.error("could not publish the continuation of message %s (%s); nacking it so "
                  "the job resumes from its previous checkpoint", delivery.message_id,
                  describe(exc))
        return False
    return True


#: Every counter and what it counts (Prometheus: ``pubsub_jobs_worker_<name>_total``).
COUNTERS: dict[str, str] = {
    "received": "Messages handed to a job.",
    "processed": "Messages performed (any outcome).",
    "succeeded": "Jobs that returned.",
    "failed": "Jobs that raised (retried, rescheduled or dead-lettered).",
    "retried": "Failed jobs left for another attempt (redelivered, or held in Cloud Tasks).",
    "rescheduled": "Failed jobs held in Cloud Tasks for a long-wait retry.",
    "dead_lettered": "Messages whose dead-letter copy, with its reason, was stored.",
    "discarded": "Jobs whose exception was in their discard_on.",
    "checkpointed": "Stretches of iterating jobs that ended in a checkpoint (continued).",
    "items": "Items iterating jobs finished.",
    "not_stored": "Dead-letter copies, reschedules or continuations that could not be "
                  "stored (the message is delivered again).",
    "errors": "Unexpected errors of pubsub-jobs or a middleware (the message is delivered "
              "again).",
    "nacked_on_stop": "Messages handed back unstarted because the worker was stopping.",
    "acks_confirmed": "Acks Pub/Sub confirmed on an exactly-once subscription (the message is "
                      "not delivered again).",
    "acks_refused": "Acks Pub/Sub refused on an exactly-once subscription (the lease was lost: "
                    "the job runs again).",
    "nacks_refused": "Nacks Pub/Sub refused on an exactly-once subscription (the lease was "
                     "lost: the message comes back anyway).",
    "put_back": "Messages of an ordering key handed back unstarted because an earlier "
                "message of their key was nacked (Pub/Sub redelivers the key in order).",
    "duplicates": "Pushed messages delivered again while running or after they were done.",
    "refused": "Push requests refused (token, path, body).",
}


@dataclass
class DeliveryStats:
    """Counts since a delivery path started, and what runs now; change them under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    #: When a job last succeeded, when a message last arrived, and how many arrived since.
    last_succeeded: float = field(default_factory=time.monotonic)
    last_received: float = field(default_factory=time.monotonic)
    received_since_success: int = 0
    #: Jobs running now: message id -> (queue, message, started (monotonic)); the message
    #: has the job's name and id in its ``attributes`` (the worker's lease keeper renews it).
    running: dict[str, tuple[str, Any, float]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> int:
        """A counter by name: ``stats.processed`` is ``stats.counts["processed"]``."""
        counts = self.__dict__.get("counts")
        if counts is not None and name in counts:
            return int(counts[name])
        raise AttributeError(name)

    def count_outcome(self, outcome: Outcome, done: bool) -> None:
        """Count a performed and settled message (``done`` as :func:`settle` said); the
        caller holds ``lock``."""
        counts = self.counts
        counts["processed"] += 1
        action = outcome.action
        if action is Action.ACK and outcome.error is None:
            counts["succeeded"] += 1
            if outcome.items:
                counts["items"] += outcome.items
            return  # a job that succeeded: nothing else to count
        counts["items"] += outcome.items
        if outcome.failed:
            counts["failed"] += 1
        if action is Action.NACK:
            counts["retried"] += 1
        elif action is Action.ACK:
            counts["discarded"] += 1
        elif not done:
            counts["not_stored"] += 1
        elif action is Action.CONTINUE:
            counts["checkpointed"] += 1
        elif action is Action.RESCHEDULE:
            counts["retried"] += 1
            counts["rescheduled"] += 1
        else:
            counts["dead_lettered"] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        """The counts; the caller holds ``lock``."""
        return {
            **self.counts,
            "in_flight": self.in_flight,
            "idle_seconds": round(time.monotonic() - self.last_activity, 3),
        }
