"""The streaming-pull worker: pulls each queue's subscription and runs its jobs.

Built on the official client's ``SubscriberClient.subscribe``: one or more streams per queue,
each with its own thread pool (``FlowControl`` keeps as many messages leased as there are
threads, so memory and concurrency stay bounded). Sync jobs run in those threads; async
jobs run on one event loop while their thread waits, so both settle alike.

Stopping (:meth:`Worker.stop`) goes in this order:

1. refuse new work: a message handed to us from now on is nacked at once;
2. cancel every stream: the client stops pulling, nacks messages it holds but never handed
   out, and waits for running callbacks, whose acks still go out (its leaser keeps their
   leases alive meanwhile);
3. wait for all of that up to ``shutdown_timeout``; what is still running then is left to
   expire and be redelivered, so nothing is lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message
from google.cloud.pubsub_v1.subscriber.scheduler import ThreadScheduler

from pubsub_jobs._clients import subscriber_client
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.errors import ConfigurationError, MessageTooLarge, describe
from pubsub_jobs.message import JobMessage, check_limits
from pubsub_jobs.middleware import Middleware, MiddlewareChain, load_middleware
from pubsub_jobs.registry import Registry, default_registry
from pubsub_jobs.settings import Settings, get_settings
from pubsub_jobs.worker.perform import (
    Action,
    AsyncRunner,
    Outcome,
    Performer,
    dead_letter_attributes,
    rescheduled,
)
from pubsub_jobs.worker.status import StatusFileWriter, StatusServer

log = logging.getLogger("pubsub_jobs.worker")


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A queue to work on: how many jobs may run at once, over how many streams."""

    name: str
    concurrency: int = 10
    streams: int = 1

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.streams < 1:
            raise ConfigurationError(f"queue {self.name!r}: concurrency and streams are >= 1")
        if self.streams > self.concurrency:
            raise ConfigurationError(
                f"queue {self.name!r}: {self.streams} streams need at least as much concurrency"
            )

    @classmethod
    def parse(cls, text: str, *, concurrency: int = 10, streams: int = 1) -> QueueSpec:
        """``name``, ``name=CONCURRENCY`` or ``name=CONCURRENCYxSTREAMS``."""
        name, _, rest = text.partition("=")
        if not name:
            raise ConfigurationError(f"queue {text!r}: give a name, e.g. --queue default=8")
        if rest:
            conc, _, strm = rest.partition("x")
            try:
                concurrency = int(conc)
                streams = int(strm) if strm else streams
            except ValueError:
                raise ConfigurationError(
                    f"queue {text!r}: expected NAME=CONCURRENCY or NAME=CONCURRENCYxSTREAMS"
                ) from None
        return cls(name, concurrency, streams)


@dataclass
class WorkerStats:
    """Counts since the worker started; read them under ``lock``."""

    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    received: int = 0
    processed: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    discarded: int = 0
    nacked_on_stop: int = 0
    in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    #: When a job last succeeded, when a message last arrived, and how many arrived since.
    last_succeeded: float = field(default_factory=time.monotonic)
    last_received: float = field(default_factory=time.monotonic)
    received_since_success: int = 0
    #: Jobs running now: message id -> (queue, job_name, job_id, started, monotonic).
    running: dict[str, tuple[str, str, str, float]] = field(default_factory=dict)

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        """The counts; the caller holds ``lock``."""
        return {
            "received": self.received,
            "processed": self.processed,
            "failed": self.failed,
            "retried": self.retried,
            "dead_lettered": self.dead_lettered,
            "discarded": self.discarded,
            "nacked_on_stop": self.nacked_on_stop,
            "in_flight": self.in_flight,
            "idle_seconds": round(time.monotonic() - self.last_activity, 3),
        }


class Worker:
    """Runs the jobs of some queues until stopped (or, in burst mode, until idle).

    ``max_lease_duration``: how long a running job keeps its message leased; a job running
    longer is redelivered to another worker meanwhile. ``stream_ack_deadline``: the lease
    granted to messages the server pushed but the client has not read yet (held back by flow
    control); when a worker stops, such messages return after this long. The emulator ignores
    server-side flow control, so there it matters more than on Google Cloud.
    """

    def __init__(
        self,
        queues: Sequence[QueueSpec | str],
        *,
        registry: Registry | None = None,
        settings: Settings | None = None,
        adapter: PubSubAdapter | None = None,
        middleware: Sequence[Middleware] | None = None,
        shutdown_timeout: float = 25.0,
        burst: bool = False,
        burst_idle: float = 2.0,
        max_lease_duration: float = 3600.0,
        stream_ack_deadline: int = 10,
        stuck_after: float = 900.0,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        status_file: Path | None = None,
    ) -> None:
        if not queues:
            raise ConfigurationError("a worker needs at least one queue (--queue NAME)")
        self.queues = [q if isinstance(q, QueueSpec) else QueueSpec.parse(q) for q in queues]
        self.settings = settings or get_settings()
        self.registry = registry if registry is not None else default_registry
        self.adapter = adapter or PubSubAdapter(self.settings)
        self.shutdown_timeout = shutdown_timeout
        self.burst = burst
        self.burst_idle = burst_idle
        self.max_lease_duration = max_lease_duration
        self.stream_ack_deadline = stream_ack_deadline
        self.stuck_after = stuck_after
        self.http_port = http_port
        self.http_host = http_host
        self.status_file = status_file
        self.http: StatusServer | None = None
        self._status_writer: StatusFileWriter | None = None
        self._subscription_limits: dict[str, int] = {}
        self.stats = WorkerStats()
        self.error: BaseException | None = None
        if middleware is None:  # the settings' (PUBSUB_JOBS_MIDDLEWARE / --middleware)
            middleware = load_middleware(self.settings)
        self._performer = Performer(
            self.registry, self.settings, MiddlewareChain(middleware), AsyncRunner()
        )
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._streams: list[tuple[str, Any]] = []
        self._dead_letter_topics = {
            q.name: self.settings.dead_letter_topic_path(q.name) for q in self.queues
        }

    def run(self) -> bool:
        """Pull and run jobs until :meth:`request_stop` (or idle, in burst mode).

        Returns True when it stopped cleanly; False when a stream failed (see ``error``) or
        running jobs outlasted the shutdown timeout.
        """
        self.start()
        try:
            while not self._stop_requested.wait(0.05):
                if self._stream_failed() or (self.burst and self._idle()):
                    break
        finally:
            clean = self.stop()
        return clean and self.error is None

    def start(self) -> None:
        """Check the subscriptions, open the streams and return; jobs run in threads."""
        subscriber = self._subscriber = subscriber_client(self.settings)
        self._check_subscriptions(subscriber)
        if self.http_port is not None:
            self.http = StatusServer(self.status, self.http_port, self.http_host).start()
        if self.status_file is not None:
            self._status_writer = StatusFileWriter(self.status, self.status_file).start()
        for spec in self.queues:
            path = self.settings.subscription_path(spec.name)
            per_stream = -(-spec.concurrency // spec.streams)
            for _ in range(spec.streams):
                executor = ThreadPoolExecutor(
                    max_workers=per_stream, thread_name_prefix=f"pubsub-jobs-{spec.name}"
                )
                future = subscriber.subscribe(
                    path,
                    callback=self._callback(spec.name),
                    flow_control=pubsub_v1.types.FlowControl(
                        max_messages=per_stream,
                        max_lease_duration=self.max_lease_duration,
                        max_duration_per_lease_extension=int(self.stream_ack_deadline),
                    ),
                    scheduler=ThreadScheduler(executor),
                    await_callbacks_on_shutdown=True,
                )
                self._streams.append((spec.name, future))
        log.info(
            "worker started: %s",
            ", ".join(f"{q.name} (concurrency {q.concurrency}, {q.streams} stream(s))"
                      for q in self.queues),
        )

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop; safe from signal handlers and other threads."""
        self._stop_requested.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop pulling, nack what has not started, wait for running jobs; see module doc."""
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._stop_requested.set()
        self._stopping.set()
        for _, future in self._streams:
            future.cancel()
        deadline = time.monotonic() + timeout
        clean = True
        for queue, future in self._streams:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except (FutureTimeout, TimeoutError):
                clean = False
                log.warning("queue %s: jobs still running after %.0fs; they will be "
                            "redelivered", queue, timeout)
            except Exception as exc:
                if self.error is None and not isinstance(exc, gexc.Cancelled):
                    log.debug("stream of %s ended with %s", queue, describe(exc))
        self._streams.clear()
        if self._status_writer is not None:
            self._status_writer.stop()
        if self.http is not None:
            self.http.stop()
        if clean:
            if self._subscriber is not None:
                self._subscriber.close()
            self._performer.close()
            self.adapter.close()
        self._subscriber = None
        log.info("worker stopped: %s", self.stats.snapshot())
        return clean

    def _check_subscriptions(self, subscriber: pubsub_v1.SubscriberClient) -> None:
        """Fail early on a missing subscription; warn where jobs and subscription disagree.

        A job allowed more attempts than the subscription's ``max_delivery_attempts`` would
        be moved to the dead-letter topic by Pub/Sub before its last attempts.
        """
        for spec in self.queues:
            path = self.settings.subscription_path(spec.name)
            try:
                sub = subscriber.get_subscription(subscription=path)
            except gexc.NotFound:
                continue  # the stream reports it, with the command that fixes it
            except Exception as exc:
                log.warning("could not read %s (%s); not checking its policies", path,
                            describe(exc))
                continue
            limit = sub.dead_letter_policy.max_delivery_attempts
            if not sub.dead_letter_policy.dead_letter_topic:
                log.warning("%s has no dead-letter policy: jobs that crash the worker are "
                            "redelivered forever; run `pubsub-jobs bootstrap --queue %s "
                            "--update`", path, spec.name)
                continue
            self._subscription_limits[spec.name] = limit
            configured = self.settings.queue_options(spec.name).max_delivery_attempts
            if configured != limit:
                log.warning("%s dead-letters after %d delivery attempts but the settings say "
                            "%d; run `pubsub-jobs bootstrap --queue %s --update` or change "
                            "the settings", path, limit, configured, spec.name)
            for job in self.registry:
                if job.queue == spec.name and job.max_attempts and job.max_attempts > limit:
                    log.warning("job %s allows %d attempts but %s dead-letters after %d: "
                                "raise the queue's max_delivery_attempts", job.name,
                                job.max_attempts, path, limit)

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows: ok or stuck (with reasons), queues, running jobs, counts."""
        now = time.monotonic()
        with self.stats.lock:
            counts = self.stats.snapshot_locked()
            running = list(self.stats.running.values())
            last_activity = self.stats.last_activity
            last_succeeded = self.stats.last_succeeded
            last_received = self.stats.last_received
            unacked = self.stats.received_since_success
        reasons = []
        streams: dict[str, int] = {}
        for queue, future in list(self._streams):
            if future.done():
                if not self._stopping.is_set():
                    reasons.append(f"a stream of queue {queue} has failed")
            else:
                streams[queue] = streams.get(queue, 0) + 1
        if self.error is not None:
            reasons.append(str(self.error))
        for _queue, job_name, job_id, started in running:
            if now - started > self.stuck_after:
                reasons.append(f"job {job_name} {job_id} has run for {now - started:.0f}s")
        if (unacked and now - last_succeeded > self.stuck_after
                and now - last_received < self.stuck_after):
            reasons.append(f"no job has succeeded for {now - last_succeeded:.0f}s while "
                           "messages keep arriving")
        wall = time.time()
        return {
            "status": "stuck" if reasons else "ok",
            "reasons": reasons,
            "pid": os.getpid(),
            "uptime_seconds": round(now - self.stats.started_at, 1),
            "queues": [
                {"name": q.name, "subscription": self.settings.subscription_path(q.name),
                 "concurrency": q.concurrency, "streams": q.streams,
                 "streams_running": streams.get(q.name, 0),
                 "max_delivery_attempts": self._subscription_limits.get(q.name)}
                for q in self.queues
            ],
            "in_flight": [
                {"queue": queue, "job_name": job_name, "job_id": job_id,
                 "age_seconds": round(now - started, 3)}
                for queue, job_name, job_id, started in running
            ],
            **{k: v for k, v in counts.items() if k != "in_flight"},
            "last_activity": datetime.fromtimestamp(wall - (now - last_activity), UTC)
            .isoformat(),
            "stuck_after_seconds": self.stuck_after,
        }

    def _idle(self) -> bool:
        with self.stats.lock:
            return (
                self.stats.in_flight == 0
                and time.monotonic() - self.stats.last_activity >= self.burst_idle
            )

    def _stream_failed(self) -> bool:
        for queue, future in self._streams:
            if future.done() and not self._stopping.is_set():
                exc = future.exception()
                path = self.settings.subscription_path(queue)
                if isinstance(exc, gexc.NotFound):
                    message = (f"subscription {path} does not exist: run "
                               f"`pubsub-jobs bootstrap --queue {queue}` (or Terraform)")
                else:
                    message = f"the stream of {path} failed: {describe(exc) if exc else 'ended'}"
                self.error = RuntimeError(message)
                log.error("%s", message)
                return True
        return False

    def _callback(self, queue: str) -> Any:
        stats = self.stats
        stopping = self._stopping
        perform = self._performer.perform

        def on_message(message: Message) -> None:
            if stopping.is_set():
                message.nack()
                with stats.lock:
                    stats.nacked_on_stop += 1
                return
            attributes = message.attributes
            key = message.message_id
            with stats.lock:
                stats.received += 1
                stats.received_since_success += 1
                stats.in_flight += 1
                stats.last_activity = stats.last_received = time.monotonic()
                stats.running[key] = (queue, attributes.get("job_name", "?"),
                                      attributes.get("job_id", "?"), stats.last_activity)
            outcome: Outcome | None = None
            try:
                outcome = perform(
                    message.data,
                    message.attributes,
                    message.delivery_attempt,
                    message.message_id,
                    queue,
                )
                self._settle(queue, message, outcome)
            except Exception:
                # A bug of ours or of a middleware: the message comes back, and after its
                # last delivery the subscription's own policy dead-letters it. The stream
                # goes on with the other messages.
                log.exception("unexpected error handling message %s; nacking it",
                              message.message_id)
                message.nack()
            except BaseException:
                message.nack()
                raise
            finally:
                with stats.lock:
                    stats.in_flight -= 1
                    stats.running.pop(key, None)
                    stats.last_activity = time.monotonic()
                    if outcome is not None and outcome.action is Action.ACK:
                        stats.last_succeeded = stats.last_activity
                        stats.received_since_success = 0
                    if outcome is not None:
                        _count(stats, outcome)

        return on_message

    def _settle(self, queue: str, message: Message, outcome: Outcome) -> None:
        if outcome.action is Action.ACK:
            message.ack()
        elif outcome.action is Action.NACK:
            message.nack()
        elif outcome.action is Action.RESCHEDULE:
            # Hold the job in Cloud Tasks for its wait; ack only once that is confirmed.
            try:
                job = JobMessage.decode(message.data, message.attributes)
                self.adapter.schedule(rescheduled(job, outcome))
            except Exception as exc:
                log.error("could not reschedule message %s (%s); nacking it so Pub/Sub "
                          "redelivers it", message.message_id, describe(exc))
                message.nack()
                return
            message.ack()
        else:
            attributes = dead_letter_attributes(
                message.attributes, outcome, outcome.attempt or message.delivery_attempt
            )
            topic = self._dead_letter_topics[queue]
            try:
                # Pub/Sub refuses a copy beyond its limits (the emulator does not): e.g. 97+
                # attributes plus our 4. The subscription's policy forwards it after its last
                # delivery attempt instead.
                check_limits(message.data, attributes, what="its dead-letter copy")
            except MessageTooLarge as exc:
                log.error("message %s cannot be dead-lettered by the worker: %s; nacking it "
                          "so the subscription's dead-letter policy moves it after its last "
                          "delivery attempt", message.message_id, exc)
                message.nack()
                return
            try:
                self.adapter.publish_raw(topic, message.data, attributes).result(
                    timeout=self.settings.publish_timeout
                )
            except Exception as exc:
                log.error("could not dead-letter message %s to %s (%s); nacking it so it "
                          "is not lost", message.message_id, topic, describe(exc))
                message.nack()
                return
            message.ack()


def _count(stats: WorkerStats, outcome: Outcome) -> None:
    stats.processed += 1
    if outcome.failed:
        stats.failed += 1
    if outcome.action is Action.DEAD_LETTER:
        stats.dead_lettered += 1
    elif outcome.action in (Action.NACK, Action.RESCHEDULE):
        stats.retried += 1
    elif outcome.error is not None:
        stats.discarded += 1
