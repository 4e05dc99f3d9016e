"""Heartbeats: a worker announces itself on Pub/Sub every few seconds, for dashboards.

Every :data:`INTERVAL` seconds a thread publishes the worker's status (host, pid, queues
with their concurrency, running jobs with their age, counts, version) as one JSON message
to the heartbeat topic ``<prefix>workers`` (:meth:`Settings.workers_topic_path`), which
``bootstrap`` creates. A graceful stop sends a last beat whose ``state`` is ``"stopped"``.
A reader (``pubsub-jobs dashboard``) goes by when beats arrive: a worker whose beats stop
coming without a "stopped" one is *lost* (SIGKILL, a crashed machine, a network cut).

Beats are best effort and never touch a job: they are built and published in a thread of
their own with a client of their own; a failed or slow publish is logged (once, until one
succeeds again) and the next beat comes on time. Nothing keeps beats but the dashboards'
own short-lived subscriptions, so they cost nothing while nobody watches.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from google.api_core import exceptions as gexc

from pubsub_jobs.adapters.clients import publisher_client
from pubsub_jobs.errors import describe
from pubsub_jobs.settings import Settings

__all__ = ["INTERVAL", "KIND", "MAX_RUNNING", "Heartbeat", "beat_payload"]

log = logging.getLogger(__name__)

#: Seconds between two beats of a worker.
INTERVAL = 5.0
#: ``kind`` of a heartbeat message (its data's and its attribute's), so readers can tell.
KIND = "pubsub-jobs.heartbeat"
#: Running jobs a beat lists (``running_total`` gives them all), to keep a beat small.
MAX_RUNNING = 100
_MAX_TEXT = 200
_COUNTS = ("processed", "failed", "retried", "dead_lettered", "discarded", "received")


def beat_payload(
    status: Mapping[str, Any], *, worker_id: str, state: str, seq: int, interval: float,
    started_at: str, host: str | None = None, version: str | None = None,
) -> dict[str, Any]:
    """One beat's JSON: a worker's ``status()`` (see :mod:`.health`) cut to what a dashboard
    shows, with who sent it and when."""
    running = list(status.get("in_flight", ()))
    return {
        "kind": KIND,
        "worker_id": worker_id,
        "seq": seq,
        "state": state,
        "host": host or socket.gethostname(),
        "pid": status.get("pid", os.getpid()),
        "version": version or _version(),
        "started_at": started_at,
        "sent_at": datetime.now(UTC).isoformat(),
        "interval_seconds": interval,
        "status": status.get("status", "ok"),
        "reasons": [_cut(str(r)) for r in list(status.get("reasons", ()))[:10]],
        "queues": [
            {"name": q.get("name"), "concurrency": q.get("concurrency"),
             "streams": q.get("streams")}
            for q in status.get("queues", ())
        ],
        "running": [
            {"queue": r.get("queue"), "job_name": _cut(str(r.get("job_name"))),
             "job_id": _cut(str(r.get("job_id"))), "age_seconds": r.get("age_seconds")}
            for r in running[:MAX_RUNNING]
        ],
        "running_total": len(running),
        "counts": {name: int(status.get(name, 0)) for name in _COUNTS},
    }


class Heartbeat:
    """Publishes ``status()`` every ``interval`` seconds until :meth:`stop`.

    ``status`` is the worker's :meth:`~pubsub_jobs.worker.Worker.status`. ``start`` and
    ``stop`` return quickly: ``stop`` waits at most ``stop_timeout`` for the last beat.
    """

    def __init__(self, status: Callable[[], Mapping[str, Any]], settings: Settings, *,
                 interval: float = INTERVAL, stop_timeout: float = 1.0) -> None:
        self.status = status
        self.settings = settings
        self.interval = interval
        self.stop_timeout = stop_timeout
        self.host = socket.gethostname()
        self.worker_id = f"{self.host}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.started_at = datetime.now(UTC).isoformat()
        self.sent = 0
        self._seq = 0
        self._seq_lock = threading.Lock()
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher: Any = None
        self._topic = ""

    def start(self) -> Heartbeat:
        """Start beating; a setting that cannot give the topic turns heartbeats off."""
        try:
            self._topic = self.settings.workers_topic_path()
            self._publisher = publisher_client(self.settings)
        except Exception as exc:
            log.warning("heartbeats are off: %s", describe(exc))
            return self
        self._thread = threading.Thread(target=self._run, name="pubsub-jobs-heartbeat",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating and send the last beat, ``"stopped"`` (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(self.stop_timeout)
        self._beat("stopped", wait=self.stop_timeout)
        self._publisher.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self._beat("running", wait=self.interval)
            if self._stop.wait(max(0.0, self.interval - (time.monotonic() - started))):
                return

    def _beat(self, state: str, *, wait: float) -> None:
        """Publish one beat and wait up to ``wait`` for Pub/Sub; never raises."""
        try:
            with self._seq_lock:
                self._seq += 1
                seq = self._seq
            payload = beat_payload(
                self.status(), worker_id=self.worker_id, state=state, seq=seq,
                interval=self.interval, started_at=self.started_at, host=self.host,
            )
            data = json.dumps(payload, default=str, separators=(",", ":")).encode()
            future = self._publisher.publish(self._topic, data, kind=KIND,
                                             worker_id=self.worker_id, state=state)
            future.result(timeout=wait)
        except Exception as exc:
            self._failed(exc)
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            log.info("heartbeats to %s are published again", self._topic)

    def _failed(self, exc: BaseException) -> None:
        if self._failing:
            log.debug("heartbeat not published: %s", describe(exc))
            return
        self._failing = True
        if isinstance(exc, gexc.NotFound):
            log.warning("heartbeat topic %s does not exist, so dashboards do not see this "
                        "worker: run `pubsub-jobs bootstrap` (or Terraform)", self._topic)
        else:
            log.warning("heartbeat not published to %s (dashboards may show this worker as "
                        "lost): %s", self._topic, describe(exc) or type(exc).__name__)


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[: _MAX_TEXT - 1] + "…"


@functools.cache
def _version() -> str:
    """This package's version, looked up by the first beat (in the heartbeat's thread): reading
    the installed distributions takes milliseconds that a worker's start should not wait for."""
    from importlib import metadata

    try:
        return metadata.version("pubsub-jobs")
    except metadata.PackageNotFoundError:
        return "unknown"
