"""The dead set: a queue's dead-lettered jobs, to list, show, retry and purge.

Dead jobs live in the queue's dead-letter subscription (``jobs-Q-dead-letter``). Two kinds
arrive there:

- copies the worker published (it gave up on the job): the original data and attributes
  plus ``dead_letter_reason``, ``dead_letter_error``, ``dead_lettered_at``, ``delivery_attempt``;
- messages Pub/Sub forwarded itself under the worker subscription's dead-letter policy (a
  worker that crashed or never settled the message ``max_delivery_attempts`` times): the
  original attributes plus Pub/Sub's ``CloudPubSubDeadLetterSource*`` ones. They carry no
  reason; it is *derived* as ``delivery_limit``.

Reading the dead set never removes anything: messages are pulled while their leases are held
(and extended), deduplicated by message id, and released at once when done. Retrying
republishes a dead job to the queue's topic and acknowledges the dead copy only after Pub/Sub
confirmed the publish; see :func:`retry` for exactly what an interruption can do.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from pubsub_jobs._clients import publisher_client, subscriber_client
from pubsub_jobs.errors import ConfigurationError, DeadJobNotFound, describe
from pubsub_jobs.message import format_time, parse_time, utcnow
from pubsub_jobs.settings import Settings, get_settings
from pubsub_jobs.worker.perform import DEAD_LETTER_ATTRIBUTES

__all__ = [
    "DERIVED_REASON",
    "DeadJob",
    "DeadSet",
    "PurgeSummary",
    "RetrySummary",
    "list_dead",
    "purge",
    "retry",
    "show",
]

log = logging.getLogger("pubsub_jobs.dead")

#: The reason given to messages Pub/Sub forwarded under the subscription's dead-letter
#: policy; they carry none, so it is derived (``DeadJob.dead_lettered_by == "subscription"``).
DERIVED_REASON = "delivery_limit"

#: Pub/Sub's own attributes on forwarded messages start with this.
PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"

#: Attributes a retry adds to the republished message (the dead copy's message id, when,
#: and how many times this job was retried from the dead set).
RETRY_ATTRIBUTES = ("retried_from", "retried_at", "retried_count")

#: Seconds a dead copy stays leased while a tool reads it; extended while the tool runs.
LEASE_SECONDS = 60
_EXTEND_EVERY = 15.0
_PULL_BATCH = 1000
_ACK_CHUNK = 1000
#: Pull timeout on Google Cloud, where a pull with nothing to return waits (no
#: ``return_immediately``); an empty answer or this timeout ends a listing.
_PULL_TIMEOUT = 5.0

DeadLetteredBy = Literal["worker", "subscription", "unknown"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadJob:
    """One message of a queue's dead set, decoded as far as it goes.

    ``reason`` is the worker's ``dead_letter_reason``; for messages Pub/Sub forwarded under
    the subscription's dead-letter policy it is :data:`DERIVED_REASON` (see
    ``dead_lettered_by``). ``args``/``kwargs`` are ``None`` when the data is not a job.
    """

    message_id: str
    queue: str
    job_id: str | None
    job_name: str | None
    reason: str
    dead_lettered_by: DeadLetteredBy
    error: str
    attempts: int | None
    dead_lettered_at: datetime | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The job id, or the message id of a dead copy that has none (an invalid message)."""
        return self.job_id or self.message_id

    @property
    def reason_derived(self) -> bool:
        """True when the message carries no reason and :attr:`reason` was inferred."""
        return self.dead_lettered_by != "worker"

    @classmethod
    def from_message(cls, queue: str, message: pubsub_v1.types.PubsubMessage) -> DeadJob:
        attrs = dict(message.attributes)
        publish_time = _as_datetime(message.publish_time)
        by: DeadLetteredBy
        if "dead_letter_reason" in attrs:
            by = "worker"
            reason = attrs["dead_letter_reason"]
            error = attrs.get("dead_letter_error", "")
            attempts = _as_int(attrs.get("delivery_attempt"))
            when = _as_time(attrs.get("dead_lettered_at")) or publish_time
        else:
            forwarded = any(k.startswith(PUBSUB_DEAD_LETTER_PREFIX) for k in attrs)
            by = "subscription" if forwarded else "unknown"
            reason = DERIVED_REASON if forwarded else "unknown"
            error = attrs.get("CloudPubSubDeadLetterSourceDeliveryErrorMessage", "")
            attempts = _as_int(attrs.get("CloudPubSubDeadLetterSourceDeliveryCount"))
            when = publish_time
        args, kwargs = _decode_arguments(message.data)
        return cls(
            message_id=message.message_id,
            queue=queue,
            job_id=attrs.get("job_id") or None,
            job_name=attrs.get("job_name") or None,
            reason=reason,
            dead_lettered_by=by,
            error=error,
            attempts=attempts,
            dead_lettered_at=when,
            args=args,
            kwargs=kwargs,
            data=bytes(message.data),
            attributes=attrs,
        )

    def matches(self, *, job_name: str | None = None, reason: str | None = None) -> bool:
        return (job_name is None or self.job_name == job_name) and (
            reason is None or self.reason == reason
        )

    def retry_attributes(self) -> dict[str, str]:
        """The attributes a retry publishes: the original ones, without any dead-letter
        attribute (ours or Pub/Sub's), plus where the retry came from."""
        attrs = {
            k: v
            for k, v in self.attributes.items()
            if k not in DEAD_LETTER_ATTRIBUTES
            and k not in RETRY_ATTRIBUTES
            and not k.startswith(PUBSUB_DEAD_LETTER_PREFIX)
        }
        attrs["retried_from"] = self.message_id
        attrs["retried_at"] = format_time(utcnow())
        attrs["retried_count"] = str((_as_int(self.attributes.get("retried_count")) or 0) + 1)
        return attrs

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json`` and web pages); data as text when it is UTF-8."""
        try:
            data: str | None = self.data.decode("utf-8")
        except UnicodeDecodeError:
            data = None
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "queue": self.queue,
            "reason": self.reason,
            "reason_derived": self.reason_derived,
            "dead_lettered_by": self.dead_lettered_by,
            "error": self.error,
            "attempts": self.attempts,
            "dead_lettered_at": (
                format_time(self.dead_lettered_at) if self.dead_lettered_at else None
            ),
            "message_id": self.message_id,
            "args": self.args,
            "kwargs": self.kwargs,
            "data": data,
            "attributes": dict(sorted(self.attributes.items())),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySummary:
    """What :func:`retry` did.

    ``retried``: ids of jobs republished and whose dead copies were removed.
    ``duplicates``: further dead copies of a retried job (same job id) removed with it.
    ``failed``: ``(id, error)`` of jobs whose publish failed; their dead copies stay.
    ``not_removed``: ids republished whose dead copy could not be acknowledged: it is still
    in the dead set, and retrying it again would run the job twice (purge it by id instead).
    ``not_found``: requested ids not in the dead set. ``remaining``: selected jobs not
    handled because the run was interrupted (their dead copies stay, released at once).
    """

    queue: str
    topic: str
    selected: int
    retried: tuple[str, ...] = ()
    duplicates: int = 0
    failed: tuple[tuple[str, str], ...] = ()
    not_removed: tuple[str, ...] = ()
    not_found: tuple[str, ...] = ()
    remaining: int = 0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not (self.failed or self.not_removed or self.not_found or self.interrupted)


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeSummary:
    """What :func:`purge` did: ids of the dead jobs removed (``purged``, every copy),
    requested ids not found, and whether the confirmation was declined."""

    queue: str
    selected: int
    purged: tuple[str, ...] = ()
    copies: int = 0
    not_found: tuple[str, ...] = ()
    cancelled: bool = False


def list_dead(
    queue: str,
    settings: Settings | None = None,
    *,
    job_name: str | None = None,
    reason: str | None = None,
    limit: int | None = None,
) -> list[DeadJob]:
    """The dead jobs of ``queue``, oldest first, without removing them.

    Every message is pulled and held until the listing is complete, then released at once,
    so the list is a snapshot; other readers of the dead set see fewer messages meanwhile.
    """
    with DeadSet(queue, settings) as dead:
        return _sorted(dead.collect(lambda j: j.matches(job_name=job_name, reason=reason),
                                    limit=limit))


def show(queue: str, job_id: str, settings: Settings | None = None) -> DeadJob:
    """The dead job whose job id (or message id) is ``job_id``; raises
    :class:`~pubsub_jobs.errors.DeadJobNotFound`. When Pub/Sub holds several copies of one
    job, the one dead-lettered last."""
    with DeadSet(queue, settings) as dead:
        found = dead.collect(lambda j: job_id in (j.job_id, j.message_id))
    if not found:
        raise DeadJobNotFound(f"no dead job {job_id!r} in queue {queue!r}")
    return _sorted(found)[-1]


def retry(
    queue: str,
    job_ids: Iterable[str] = (),
    settings: Settings | None = None,
    *,
    all: bool = False,
    job_name: str | None = None,
    reason: str | None = None,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> RetrySummary:
    """Republish dead jobs to the queue's topic, then remove their dead copies.

    Select jobs by id (job id or message id), or ``all=True``; ``job_name``/``reason``
    narrow either. A retried message has the original data and attributes (same
    ``job_id``) without the dead-letter ones, so its delivery attempts start again, plus
    ``retried_from`` (the dead copy's message id), ``retried_at`` and ``retried_count``.

    Jobs go in batches: publish the batch, wait until Pub/Sub confirmed each message, then
    acknowledge the dead copies of the confirmed ones (and of nothing else). So no job is
    ever lost. Setting ``stop``, or a KeyboardInterrupt, ends the run after the batch in
    flight (a KeyboardInterrupt is raised again then); the rest are released at once, and
    running the same retry again carries on. Several dead copies of one job id are retried
    once. A job can run twice only if the process dies outright (SIGKILL, power, network)
    between Pub/Sub's confirmation and the acknowledgement of the dead copy, if an
    acknowledgement fails (reported in ``not_removed``), if a publish timed out and was
    in fact taken (reported in ``failed``), or if Pub/Sub redelivers an acknowledged dead
    copy (it delivers at least once). ``progress(done, total)`` is called after each batch.
    """
    ids = list(job_ids)
    _check_selection(ids, all, job_name, reason, "retry")
    if batch_size < 1:
        raise ConfigurationError("batch_size is at least 1")
    settings = settings or get_settings()
    topic = settings.topic_path(queue)
    stop = stop or threading.Event()
    with DeadSet(queue, settings) as dead:
        groups, not_found = dead.select(ids, job_name=job_name, reason=reason)
        total = len(groups)
        retried: list[str] = []
        failed: list[tuple[str, str]] = []
        not_removed: list[str] = []
        duplicates = 0
        done = 0
        publisher = publisher_client(
            settings,
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=batch_size, max_bytes=9 * 1000 * 1000, max_latency=0.01
            ),
        )
        executor = ThreadPoolExecutor(1, thread_name_prefix="pubsub-jobs-retry")
        interrupted_by_keyboard = False

        def run_batch(batch: Sequence[list[DeadJob]]) -> None:
            nonlocal duplicates
            futures = [
                (copies, publisher.publish(topic, copies[0].data, **copies[0].retry_attributes()))
                for copies in batch
            ]
            confirmed: list[list[DeadJob]] = []
            for copies, future in futures:
                try:
                    future.result(timeout=settings.publish_timeout)
                except Exception as exc:
                    failed.append((copies[0].id, _publish_error(exc)))
                    dead.release(copies)
                else:
                    confirmed.append(copies)
            removed = dead.ack([c for copies in confirmed for c in copies])
            for copies in confirmed:
                if builtins.all(c.message_id in removed for c in copies):
                    retried.append(copies[0].id)
                    duplicates += len(copies) - 1
                else:
                    not_removed.append(copies[0].id)

        try:
            for start in range(0, total, batch_size):
                if stop.is_set():
                    break
                batch = groups[start : start + batch_size]
                future: Future[None] = executor.submit(run_batch, batch)
                try:
                    future.result()
                except KeyboardInterrupt:
                    # Finish the batch in flight so no confirmed publish is left without
                    # the ack of its dead copy.
                    interrupted_by_keyboard = True
                    stop.set()
                    future.result()
                done += len(batch)
                if progress is not None:
                    progress(done, total)
        finally:
            executor.shutdown(wait=True)
            publisher.stop()
    summary = RetrySummary(
        queue=queue,
        topic=topic,
        selected=total,
        retried=tuple(retried),
        duplicates=duplicates,
        failed=tuple(failed),
        not_removed=tuple(not_removed),
        not_found=tuple(not_found),
        remaining=total - done,
        interrupted=done < total,
    )
    log.debug("retried %d of %d dead jobs of queue %s", len(retried), total, queue)
    if interrupted_by_keyboard:
        raise KeyboardInterrupt
    return summary


def purge(
    queue: str,
    job_ids: Iterable[str] = (),
    settings: Settings | None = None,
    *,
    all: bool = False,
    job_name: str | None = None,
    reason: str | None = None,
    confirm: Callable[[list[DeadJob]], bool] | None = None,
) -> PurgeSummary:
    """Remove dead jobs for good. Selection as in :func:`retry`.

    ``confirm`` is called with the selected jobs (one per job id) while they are held;
    returning False removes nothing.
    """
    ids = list(job_ids)
    _check_selection(ids, all, job_name, reason, "purge")
    with DeadSet(queue, settings) as dead:
        groups, not_found = dead.select(ids, job_name=job_name, reason=reason)
        if not groups or (confirm is not None and not confirm([g[0] for g in groups])):
            return PurgeSummary(queue=queue, selected=len(groups), not_found=tuple(not_found),
                                cancelled=bool(groups))
        copies = [c for g in groups for c in g]
        removed = dead.ack(copies)
    purged = tuple(g[0].id for g in groups if builtins.all(c.message_id in removed for c in g))
    return PurgeSummary(queue=queue, selected=len(groups), purged=purged,
                        copies=len(removed), not_found=tuple(not_found))


class DeadSet:
    """The messages of a queue's dead-letter subscription, held while a tool works on them.

    ``collect`` pulls until a pull brings nothing new, holding every lease (extended in the
    background every few seconds); ``ack`` removes messages, ``release`` hands them back;
    leaving the ``with`` block releases whatever is still held, at once.
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
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._keeper: threading.Thread | None = None

    def __enter__(self) -> DeadSet:
        self._subscriber = subscriber_client(self.settings)
        self._keeper = threading.Thread(
            target=self._keep_leases, name="pubsub-jobs-dead-leases", daemon=True
        )
        self._keeper.start()
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
        if self._subscriber is None:
            raise RuntimeError("use DeadSet in a with block")
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
                self._modack(fresh, self.lease_seconds)
            if not new:
                break
        return found[:limit] if limit is not None else found

    def select(
        self, ids: Sequence[str], *, job_name: str | None, reason: str | None
    ) -> tuple[list[list[DeadJob]], list[str]]:
        """The matching dead jobs grouped by job id (newest copy first), and ids not found."""
        wanted = set(ids)

        def keep(job: DeadJob) -> bool:
            if wanted and not ({job.job_id, job.message_id} & wanted):
                return False
            return job.matches(job_name=job_name, reason=reason)

        groups: dict[str, list[DeadJob]] = {}
        for job in _sorted(self.collect(keep)):
            groups.setdefault(job.id, []).insert(0, job)
        seen = {i for copies in groups.values() for c in copies for i in (c.id, c.message_id)}
        not_found = [i for i in dict.fromkeys(ids) if i not in seen]
        return list(groups.values()), not_found

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
        for chunk in _chunks(ack_ids, _ACK_CHUNK):
            try:
                self.subscriber.modify_ack_deadline(
                    subscription=self.path, ack_ids=list(chunk), ack_deadline_seconds=seconds
                )
            except Exception as exc:
                log.warning("could not %s %d dead messages of %s: %s",
                            "release" if seconds == 0 else "extend the lease of",
                            len(chunk), self.path, describe(exc))

    def _keep_leases(self) -> None:
        while not self._closing.wait(_EXTEND_EVERY):
            with self._lock:
                ack_ids = list(self._held.values())
            if ack_ids:
                self._modack(ack_ids, self.lease_seconds)


def _check_selection(
    ids: Sequence[str], all_: bool, job_name: str | None, reason: str | None, verb: str
) -> None:
    if ids and all_:
        raise ConfigurationError(f"{verb}: give job ids or --all, not both")
    if not (ids or all_ or job_name or reason):
        raise ConfigurationError(
            f"{verb}: say which dead jobs: job ids, --all, --job-name or --reason"
        )


def _sorted(jobs: Iterable[DeadJob]) -> list[DeadJob]:
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(jobs, key=lambda j: (j.dead_lettered_at or oldest, j.message_id))


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _publish_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return ("Pub/Sub did not confirm the publish in time; it may still have been taken: "
                "check before retrying this job again")
    return describe(exc)


def _decode_arguments(data: bytes) -> tuple[list[Any] | None, dict[str, Any] | None]:
    try:
        body = json.loads(data)
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    args, kwargs = body.get("args"), body.get("kwargs")
    return (args if isinstance(args, list) else None,
            kwargs if isinstance(kwargs, dict) else None)


def _as_int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _as_time(text: str | None) -> datetime | None:
    try:
        return parse_time(text) if text else None
    except ValueError:
        return None


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, datetime) or value.timestamp() <= 0:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
