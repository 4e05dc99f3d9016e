"""What the pages show and do, through :mod:`pubsub_jobs.admin` only.

:class:`AdminBackend` reads each queue's status and dead set and retries or purges dead jobs
with the same functions as ``pubsub-jobs dead`` and ``pubsub-jobs queues``, so the guarantees
are the CLI's: a retried job's dead copy is removed only once Pub/Sub confirmed its
republish, and nothing is ever removed by reading. Purging is confirmed against a digest of
what the person saw: if the selection changed meanwhile, nothing is purged and the page
asks again. Tests give the views a backend of their own with the same methods.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pubsub_jobs.admin.queue_status import QueueStatus, queue_status
from pubsub_jobs.dead.job import DeadJob
from pubsub_jobs.dead.operations import PurgeSummary, RetrySummary, list_dead, purge, retry
from pubsub_jobs.dead.subscription import DeadSet
from pubsub_jobs.errors import describe
from pubsub_jobs.settings import Settings

__all__ = ["MAX_COUNTED", "MAX_LISTED", "AdminBackend", "Backend", "QueueRow", "selection_digest"]

#: A dead set is counted by reading it (on the emulator) up to this many messages.
MAX_COUNTED = 1000
#: A dead-set page reads at most this many messages (the CLI lists more).
MAX_LISTED = 10_000
EMULATOR_NOTE = ("unknown on the emulator, which keeps no Cloud Monitoring metrics; dead jobs "
                 "are counted by reading each dead set")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueRow:
    """One queue on the front page. ``None``: unknown (``note`` says why)."""

    queue: str
    topic: str
    topic_exists: bool
    subscription: str
    subscription_exists: bool
    backlog: int | None = None
    oldest_unacked_seconds: float | None = None
    dead: int | None = None
    dead_at_least: bool = False
    note: str | None = None


class Backend(Protocol):
    """What the views need; :class:`AdminBackend` is the real one."""

    @property
    def queues(self) -> Sequence[str]: ...

    def queue_rows(self) -> list[QueueRow]: ...

    def dead_jobs(self, queue: str) -> list[DeadJob]: ...

    def retry(self, queue: str, ids: Sequence[str], every: bool) -> RetrySummary: ...

    def purge_preview(self, queue: str, ids: Sequence[str],
                      every: bool) -> tuple[list[DeadJob], str]: ...

    def purge(self, queue: str, ids: Sequence[str], every: bool,
              digest: str) -> PurgeSummary: ...


def selection_digest(jobs: Sequence[DeadJob]) -> str:
    """Names what a person confirmed: the dead messages (one per job, see
    :meth:`DeadSet.select`), whatever their order."""
    ids = sorted(j.message_id for j in jobs)
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()


class AdminBackend:
    """The queues' status and dead sets, through the admin functions; the front page's
    figures are kept ``cache_seconds`` so that many open pages cost the same as one."""

    def __init__(self, settings: Settings, queues: Sequence[str], *,
                 cache_seconds: float = 5.0) -> None:
        self.settings = settings
        self.queues = list(queues)
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._rows: tuple[float, list[QueueRow]] | None = None

    def queue_rows(self) -> list[QueueRow]:
        with self._lock:  # one reading at a time; the others wait and share it
            if self._rows is not None and time.monotonic() - self._rows[0] < self.cache_seconds:
                return self._rows[1]
            rows = [self._row(s) for s in queue_status(self.queues, self.settings)]
            self._rows = (time.monotonic(), rows)
            return rows

    def dead_jobs(self, queue: str) -> list[DeadJob]:
        return list_dead(queue, self.settings, limit=MAX_LISTED)

    def retry(self, queue: str, ids: Sequence[str], every: bool) -> RetrySummary:
        self._rows = None
        return retry(queue, ids, self.settings, every=every)

    def purge_preview(self, queue: str, ids: Sequence[str],
                      every: bool) -> tuple[list[DeadJob], str]:
        with DeadSet(queue, self.settings) as dead:
            groups, _ = dead.select([] if every else ids, job_name=None, reason=None)
        heads = [g[0] for g in groups]
        return heads, selection_digest(heads)

    def purge(self, queue: str, ids: Sequence[str], every: bool, digest: str) -> PurgeSummary:
        self._rows = None
        return purge(queue, ids, self.settings, every=every,
                     confirm=lambda jobs: selection_digest(jobs) == digest)

    def _row(self, status: QueueStatus) -> QueueRow:
        subs = {s.role: s for s in status.subscriptions}
        worker, dead_sub = subs.get("worker"), subs.get("dead-letter")
        dead: int | None = dead_sub.backlog if dead_sub is not None else None
        at_least = False
        note = EMULATOR_NOTE if self.settings.pubsub_emulator_host else status.backlog_note
        if dead is None and status.dead_letter_topic_exists and dead_sub and dead_sub.exists:
            try:
                with DeadSet(status.queue, self.settings) as reader:
                    dead = len(reader.collect(limit=MAX_COUNTED))
                at_least = dead >= MAX_COUNTED
            except Exception as exc:
                note = f"dead set unreadable: {describe(exc)}"
        return QueueRow(
            queue=status.queue,
            topic=status.topic,
            topic_exists=status.topic_exists,
            subscription=worker.name if worker else self.settings.subscription_path(status.queue),
            subscription_exists=bool(worker and worker.exists),
            backlog=worker.backlog if worker else None,
            oldest_unacked_seconds=worker.oldest_unacked_seconds if worker else None,
            dead=dead,
            dead_at_least=at_least,
            note=note,
        )
