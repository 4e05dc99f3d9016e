"""The dead set: a queue's dead-lettered jobs, to list, show, retry and purge.

Dead jobs live in the queue's dead-letter subscription (``jobs-Q-dead-letter``). Two kinds
arrive there:

- copies the worker published (it gave up on the job): the original data and attributes
  plus ``dead_letter_reason``, ``dead_letter_error``, ``dead_lettered_at``, ``delivery_attempt``;
- messages Pub/Sub forwarded itself under the worker subscription's dead-letter policy (a
  worker that crashed or never settled the message ``max_delivery_attempts`` times): the
  original attributes plus Pub/Sub's ``CloudPubSubDeadLetterSource*`` ones. They carry no
  reason; it is *derived* as ``delivery_limit``.

Each message is read into a :class:`~pubsub_jobs.dead.job.DeadJob`, whatever its data
(see that module). Reading the dead set never removes anything: messages are pulled while
their leases are held (and extended), deduplicated by message id, and released at once when
done (:class:`~pubsub_jobs.dead.subscription.DeadSet`). Retrying republishes a dead job to the
queue's topic and acknowledges the dead copy only after Pub/Sub confirmed the publish; see
:func:`retry` for exactly what an interruption can do.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from google.cloud import pubsub_v1
from google.pubsub_v1 import PublisherClient as GapicPublisherClient

from pubsub_jobs.adapters.clients import publisher_client
from pubsub_jobs.dead.job import DeadJob, sort_dead
from pubsub_jobs.dead.subscription import DeadSet
from pubsub_jobs.errors import ConfigurationError, DeadJobNotFound, describe
from pubsub_jobs.settings import Settings, get_settings

__all__ = [
    "PurgeSummary",
    "RetrySummary",
    "list_dead",
    "purge",
    "retry",
    "show",
]

log = logging.getLogger(__name__)

#: Names ``PublisherClient.publish`` takes for itself (``topic``, ``data``, ``ordering_key``,
#: ``retry``, ``timeout``): a message with an attribute of such a name is published with a
#: request of its own, since it cannot go through ``publish(**attributes)``.
_PUBLISH_PARAMETERS = frozenset(
    name for name, p in inspect.signature(pubsub_v1.PublisherClient.publish).parameters.items()
    if p.kind is not inspect.Parameter.VAR_KEYWORD
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySummary:
    """What :func:`retry` did.

    ``retried``: ids of jobs republished and whose dead copies were removed (an id shared
    by several different jobs appears once for each).
    ``duplicates``: further dead copies of a retried message (same data and original
    attributes, see :attr:`DeadJob.original_key`) removed with it.
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
        return sort_dead(dead.collect(lambda j: j.matches(job_name=job_name, reason=reason),
                                      limit=limit))


def show(queue: str, job_id: str, settings: Settings | None = None) -> DeadJob:
    """The dead job whose job id (or message id) is ``job_id``; raises
    :class:`~pubsub_jobs.errors.DeadJobNotFound`. When Pub/Sub holds several copies of one
    job, the one dead-lettered last."""
    with DeadSet(queue, settings) as dead:
        found = dead.collect(lambda j: job_id in (j.job_id, j.message_id))
    if not found:
        raise DeadJobNotFound(f"no dead job {job_id!r} in queue {queue!r}")
    return sort_dead(found)[-1]


def retry(
    queue: str,
    job_ids: Iterable[str] = (),
    settings: Settings | None = None,
    *,
    every: bool = False,
    job_name: str | None = None,
    reason: str | None = None,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    stop: threading.Event | None = None,
) -> RetrySummary:
    """Republish dead jobs to the queue's topic, then remove their dead copies.

    Select jobs by id (job id or message id), or every dead job (``every=True``);
    ``job_name``/``reason`` narrow either. A retried message has the original data and
    attributes (same ``job_id``) without the dead-letter ones, so its delivery attempts
    start again, plus ``retried_from`` (the dead copy's message id), ``retried_at`` and
    ``retried_count``.

    Jobs go in batches: publish the batch, wait until Pub/Sub confirmed each message, then
    acknowledge the dead copies of the confirmed ones (and of nothing else). So no job is
    ever lost. Setting ``stop``, or a KeyboardInterrupt, ends the run after the batch in
    flight (a KeyboardInterrupt is raised again then); the rest are released at once, and
    running the same retry again carries on. Several dead copies of one message (same data
    and attributes but for the dead-letter ones) are retried once; different jobs that
    share a ``job_id`` are each retried. A job can run twice only if the process dies
    outright (SIGKILL, power, network) between Pub/Sub's confirmation and the
    acknowledgement of the dead copy, if an acknowledgement fails (reported in
    ``not_removed``), if a publish timed out and was in fact taken (reported in
    ``failed``), or if Pub/Sub redelivers an acknowledged dead copy (it delivers at least
    once). ``progress(done, total)`` is called after each batch.
    """
    ids = list(job_ids)
    _check_selection(ids, every, job_name, reason, "retry")
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
            futures = [(copies, _publish(publisher, topic, copies[0], settings))
                       for copies in batch]
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
                if all(c.message_id in removed for c in copies):
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
    every: bool = False,
    job_name: str | None = None,
    reason: str | None = None,
    confirm: Callable[[list[DeadJob]], bool] | None = None,
) -> PurgeSummary:
    """Remove dead jobs for good. Selection as in :func:`retry`.

    ``confirm`` is called with the selected jobs (one per dead message, whatever its number
    of copies) while they are held; returning False removes nothing.
    """
    ids = list(job_ids)
    _check_selection(ids, every, job_name, reason, "purge")
    with DeadSet(queue, settings) as dead:
        groups, not_found = dead.select(ids, job_name=job_name, reason=reason)
        if not groups or (confirm is not None and not confirm([g[0] for g in groups])):
            return PurgeSummary(queue=queue, selected=len(groups), not_found=tuple(not_found),
                                cancelled=bool(groups))
        copies = [c for g in groups for c in g]
        removed = dead.ack(copies)
    purged = tuple(g[0].id for g in groups if all(c.message_id in removed for c in g))
    return PurgeSummary(queue=queue, selected=len(groups), purged=purged,
                        copies=len(removed), not_found=tuple(not_found))


def _publish(
    publisher: pubsub_v1.PublisherClient, topic: str, job: DeadJob, settings: Settings
) -> Future[str]:
    """Republish ``job``; the future gives its new message id, or the error (never raises:
    one message Pub/Sub or the client refuses must not stop the others)."""
    try:
        attributes = job.retry_attributes()
        if _PUBLISH_PARAMETERS.isdisjoint(attributes):
            future: Future[str] = publisher.publish(topic, job.data, **attributes)
            return future
        response = GapicPublisherClient.publish(
            publisher,
            request={"topic": topic, "messages": [{"data": job.data, "attributes": attributes}]},
            timeout=settings.publish_timeout,
        )
        done: Future[str] = Future()
        done.set_result(response.message_ids[0])
    except Exception as exc:
        done = Future()
        done.set_exception(exc)
    return done


def _check_selection(
    ids: Sequence[str], every: bool, job_name: str | None, reason: str | None, verb: str
) -> None:
    if ids and every:
        raise ConfigurationError(f"{verb}: give job ids or --all, not both")
    if not (ids or every or job_name or reason):
        raise ConfigurationError(
            f"{verb}: say which dead jobs: job ids, --all, --job-name or --reason"
        )


def _publish_error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return ("Pub/Sub did not confirm the publish in time; it may still have been taken: "
                "check before retrying this job again")
    return describe(exc)
