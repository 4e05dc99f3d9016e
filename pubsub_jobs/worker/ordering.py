"""What the pull worker does differently for a message with an ordering key.

The official client hands a stream's messages of one ordering key to the callback one at a
time, releasing the next as soon as the current one is acked or nacked. Two rules follow:

- **Retry in place.** A job of a key that fails with attempts left is not nacked (Pub/Sub
  would redeliver the jobs held behind it too, spending their delivery attempts): it runs
  again in the same callback after :func:`retry_wait`, with the attempt counted on
  (``delivery_attempt`` + retries here), until it succeeds or is dead-lettered at
  ``max_attempts``. A long wait (``retry_wait``, ``Retry(delay=...)``) is waited here, never
  in Cloud Tasks, where the job would come back behind the later jobs of its key; it is cut
  to :data:`MAX_WAIT`.
- **Put back.** When such a message must be nacked after all (the worker stops during the
  wait, its dead-letter copy cannot be stored, an unexpected error), the client at once
  hands out the next message of the key, which must not run before the nacked one.
  :class:`KeyHolds` remembers the nacked message of each key, and the worker nacks unstarted
  the key's messages that the client held behind it ("put back", counted as ``put_back``)
  until the nacked one comes back, or at most for the queue's ack deadline: Pub/Sub
  redelivers the key from the nacked message, in order.
- **Stop.** A stop ends a wait in place at once and nacks the message. The client does not
  hand back on close the messages it holds behind it (google-cloud-pubsub 2.44 nacks only
  those it has not sorted by key yet): they come back when their lease ends.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from pubsub_jobs.outcome import Outcome
from pubsub_jobs.queues import QueueOptions

log = logging.getLogger(__name__)

#: The longest a job of an ordering key waits here before it runs again, in seconds
#: (Pub/Sub's own longest retry backoff); a longer ``retry_wait`` is cut to it.
MAX_WAIT = 600.0


def retry_wait(outcome: Outcome, failures: int, options: QueueOptions) -> float:
    """Seconds to wait before running a failed job of an ordering key again: the job's own
    wait (``retry_wait``, ``Retry(delay=...)``) when it has one, else the queue's
    ``min_retry_backoff`` doubled per failure here (``failures``, 1 for the first), at most
    its ``max_retry_backoff``; never above :data:`MAX_WAIT`."""
    if outcome.delay is not None:
        wait = outcome.delay.total_seconds()
        if wait > MAX_WAIT:
            log.warning("a job of an ordering key asked to wait %.0f s before its next "
                        "attempt; it waits %.0f s (it cannot leave its place in the key)",
                        wait, MAX_WAIT)
            return MAX_WAIT
        return max(0.0, wait)
    low = options.min_retry_backoff.total_seconds()
    high = options.max_retry_backoff.total_seconds()
    return float(min(low * 2 ** min(failures - 1, 30), high, MAX_WAIT))


@dataclass(slots=True)
class _Hold:
    message_id: str
    #: When it was nacked (wall clock, as the client stamps what it receives).
    nacked_at: float
    until: float


class KeyHolds:
    """The ordering keys whose messages are put back: for each, the nacked message that
    must run first, when it was nacked, and when the hold ends at the latest.

    Only messages the client received *before* the nack are put back: those it held behind
    the nacked one. A message received after it comes from Pub/Sub, which delivers a key in
    order again from the nacked message, so it runs (and ends the hold): putting it back would
    spend its delivery attempts for nothing.
    """

    def __init__(self) -> None:
        self._holds: dict[tuple[str, str], _Hold] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._holds)

    def hold(self, queue: str, key: str, message_id: str, seconds: float) -> None:
        """Put back the messages of ``key`` received until now, for up to ``seconds``, until
        ``message_id`` (just nacked) is delivered again."""
        with self._lock:
            self._holds[(queue, key)] = _Hold(message_id, time.time(),
                                              time.monotonic() + seconds)

    def put_back(self, queue: str, key: str, message_id: str,
                 received_at: float | None = None) -> bool:
        """Whether a message of ``key`` (received by the client at ``received_at``, wall
        clock; None when unknown) is to be nacked unstarted. The nacked message itself, one
        received after the nack, or any once the hold ended, ends the hold and runs."""
        with self._lock:
            held = self._holds.get((queue, key))
            if held is None:
                return False
            if (held.message_id != message_id and time.monotonic() < held.until
                    and (received_at is None or received_at <= held.nacked_at)):
                return True
            del self._holds[(queue, key)]
        return False


def received_at(message: object) -> float | None:
    """When the official client received ``message`` (its own stamp), or None."""
    stamp = getattr(message, "_received_timestamp", None)
    return stamp if isinstance(stamp, float) else None
