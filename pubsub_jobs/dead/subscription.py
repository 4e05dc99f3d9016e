"""Reading a queue's dead set: :class:`DeadSet` pulls the dead-letter subscription, holds
what it pulled, and acknowledges or hands back exactly what it is told to.

It is the one place that pulls and acknowledges dead messages: the operations of
:mod:`pubsub_jobs.dead.operations`, ``pubsub-jobs queues --count-dead`` and the test helper
:func:`pubsub_jobs.testing.pull_dead_letters` all go through it.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.dead.job import DeadJob, sort_dead
from pubsub_jobs.errors import describe
from pubsub_jobs.settings import Settings, get_settings

__all__ = ["LEASE_SECONDS", "DeadSet"]

log = logging.getLogger(__name__)

#: Seconds a dead copy stays leased while a tool reads it; extended while the tool runs.
LEASE_SECONDS = 60
_EXTEND_EVERY = 15.0
_PULL_BATCH = 1000
_ACK_CHUNK = 1000
#: Pull timeout on Google Cloud, where a pull with nothing to return waits (no
#: ``return_immediately``); an empty answer or this timeout ends a listing.
_PULL_TIMEOUT = 5.0


class DeadSet:
    """The messages of a queue's dead-letter subscription, held while a tool works on them.

    ``collect`` pulls until a pull brings nothing new, holding every lease (extended in the
    background every few seconds); ``ack`` removes messages, ``release`` hands them back;
    ``close`` (or leaving the ``with`` block) releases whatever is still held, at once.
    The client is opened on first use, so a ``DeadSet`` costs nothing until it reads.
    """

    def __init__(
        self, queue: str, settings: Settings | None = None, *, lease_seconds: int = LEASE_SECONDS
    ) -> None:
        self.queue = queue
        self.settings = settings or get_settings()
        self.path = self.settings.dead_letter_subscription_path(queue)
        self.lease_seconds = lease_seconds
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._held: dict[str, str] = {}  # message id -> current ack id
        self._jobs: dict[str, DeadJob] = {}
        self._taken: set[str] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def __enter__(self) -> DeadSet:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def subscriber(self) -> pubsub_v1.SubscriberClient:
        """The subscriber client, opened on first use (and again after :meth:`close`)."""
        if self._subscriber is None:
            self._subscriber = subscriber_client(self.settings)
        return self._subscriber

    def collect(
        self, keep: Callable[[DeadJob], bool] | None = None, *, limit: int | None = None
    ) -> list[DeadJob]:
        """Pull every dead message (holding it); return those ``keep`` accepts.

        Stops early once ``limit`` of them are found.
        """
        found: list[DeadJob] = [j for j in self._jobs.values() if keep is None or keep(j)]
        while limit is None or len(found) < limit:
            new = 0
            received = self._pull()
            fresh: list[str] = []
            for item in received:
                message_id = item.message.message_id
                with self._lock:
                    known = message_id in self._jobs
                    self._held[message_id] = item.ack_id
                fresh.append(item.ack_id)
                if known:
                    continue
                new += 1
                job = DeadJob.from_message(self.queue, item.message)
                self._jobs[message_id] = job
                if keep is None or keep(job):
                    found.append(job)
            if fresh:
                self._start_keeper()
                self._modack(fresh, self.lease_seconds)
            if not new:
                break
        return found[:limit] if limit is not None else found

    def count(self) -> int:
        """How many messages the dead set holds (every one is pulled, then released)."""
        return len(self.collect())

    def select(
        self, ids: Sequence[str], *, job_name: str | None, reason: str | None
    ) -> tuple[list[list[DeadJob]], list[str]]:
        """The matching dead messages grouped by the message they are copies of (see
        :attr:`DeadJob.original_key`; newest copy first), and the ids not found."""
        wanted = set(ids)

        def keep(job: DeadJob) -> bool:
            if wanted and not ({job.job_id, job.message_id} & wanted):
                return False
            return job.matches(job_name=job_name, reason=reason)

        groups: dict[tuple[bytes, tuple[tuple[str, str], ...]], list[DeadJob]] = {}
        for job in sort_dead(self.collect(keep)):
            groups.setdefault(job.original_key, []).insert(0, job)
        seen = {i for copies in groups.values() for c in copies for i in (c.id, c.message_id)}
        not_found = [i for i in dict.fromkeys(ids) if i not in seen]
        return list(groups.values()), not_found

    def take(self) -> list[DeadJob]:
        """Pull every message and acknowledge it: the messages removed that this dead set
        had not taken before, oldest first (what test helpers check)."""
        self.collect()
        with self._lock:
            held = [self._jobs[m] for m in self._held if m in self._jobs]
        removed = self.ack(held)
        taken = [j for j in held if j.message_id in removed and j.message_id not in self._taken]
        self._taken.update(removed)
        return sort_dead(taken)

    def ack(self, jobs: Sequence[DeadJob]) -> set[str]:
        """Acknowledge (remove) held messages; returns the message ids acknowledged."""
        done: set[str] = set()
        for chunk in _chunks(self._unhold(jobs), _ACK_CHUNK):
            try:
                self.subscriber.acknowledge(subscription=self.path,
                                            ack_ids=[ack_id for _, ack_id in chunk])
            except Exception as exc:
                log.error("could not acknowledge %d dead messages of %s: %s",
                          len(chunk), self.path, describe(exc))
                continue
            done.update(message_id for message_id, _ in chunk)
        return done

    def release(self, jobs: Sequence[DeadJob] | None = None) -> None:
        """Hand held messages back at once (all of them when ``jobs`` is None)."""
        self._modack([ack_id for _, ack_id in self._unhold(jobs)], 0)

    def close(self) -> None:
        """Stop extending leases, release everything still held, close the client."""
        self._closing.set()
        if self._keeper is not None:
            self._keeper.join()
            self._keeper = None
        if self._subscriber is not None:
            try:
                self.release()
            finally:
                self._subscriber.close()
                self._subscriber = None

    def _start_keeper(self) -> None:
        if self._keeper is None:
            self._closing = threading.Event()
            self._keeper = threading.Thread(
                target=self._keep_leases, args=(self._closing,),
                name="pubsub-jobs-dead-leases", daemon=True,
            )
            self._keeper.start()

    def _unhold(self, jobs: Sequence[DeadJob] | None) -> list[tuple[str, str]]:
        """Stop holding ``jobs`` (all when None); their (message id, ack id) pairs."""
        with self._lock:
            if jobs is None:
                pairs = list(self._held.items())
                self._held.clear()
                return pairs
            return [(j.message_id, self._held.pop(j.message_id)) for j in jobs
                    if j.message_id in self._held]

    def _pull(self) -> list[pubsub_v1.types.ReceivedMessage]:
        if self.settings.pubsub_emulator_host:
            # The emulator's synchronous pull with nothing to return waits out its deadline.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "The return_immediately flag",
                                        DeprecationWarning)
                response = self.subscriber.pull(
                    subscription=self.path, max_messages=_PULL_BATCH,
                    return_immediately=True, timeout=60,
                )
            return list(response.received_messages)
        try:
            response = self.subscriber.pull(
                subscription=self.path, max_messages=_PULL_BATCH, timeout=_PULL_TIMEOUT
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return []
        return list(response.received_messages)

    def _modack(self, ack_ids: Sequence[str], seconds: int) -> None:
        if not ack_ids:
            return
        for chunk in _chunks(ack_ids, _ACK_CHUNK):
            try:
                self.subscriber.modify_ack_deadline(
                    subscription=self.path, ack_ids=list(chunk), ack_deadline_seconds=seconds
                )
            except Exception as exc:
                log.warning("could not %s %d dead messages of %s: %s",
                            "release" if seconds == 0 else "extend the lease of",
                            len(chunk), self.path, describe(exc))

    def _keep_leases(self, closing: threading.Event) -> None:
        while not closing.wait(_EXTEND_EVERY):
            with self._lock:
                ack_ids = list(self._held.values())
            if ack_ids:
                self._modack(ack_ids, self.lease_seconds)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
