"""The streaming-pull worker: pulls each queue's subscription and runs its jobs.

Built on the official client's ``SubscriberClient.subscribe`` (:mod:`.streams`). Sync jobs
run in the streams' threads; async jobs run on one event loop while their thread waits, so
both settle alike. The core's :class:`~pubsub_jobs.perform.Performer` decides each message's
:class:`~pubsub_jobs.outcome.Outcome` and :func:`~pubsub_jobs.delivery.settle` stores what it
needs (a dead-letter copy, a rescheduled job, a continuation); the worker turns "done" into
an ack and "not done" into a nack.

Stopping (:meth:`Worker.stop`) goes in this order:

1. refuse new work: a message handed to us from now on is nacked at once, and a job of an
   ordering key waiting to be retried in place stops waiting and is nacked (:mod:`.ordering`);
2. cancel every stream: the client stops pulling, nacks messages it holds but never handed
   out, and waits for running callbacks, whose acks still go out (its leaser keeps their
   leases alive meanwhile);
3. wait for all of that up to ``shutdown_timeout``; what is still running then is left to
   expire and be redelivered, so nothing is lost.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from google.cloud import pubsub_v1
from google.cloud.pubsub_v1.subscriber.message import Message

from pubsub_jobs._async_runner import AsyncRunner
from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.adapters.delivery_store import PubSubStore
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.adapters.subscriptions import check_subscription
from pubsub_jobs.delivery import Delivery, DeliveryStats, settle
from pubsub_jobs.errors import StreamFailed
from pubsub_jobs.jobs import Registry, default_registry
from pubsub_jobs.middleware import Middleware, MiddlewareChain, load_middleware
from pubsub_jobs.middleware.logging import StructuredLogging
from pubsub_jobs.outcome import Action, Outcome
from pubsub_jobs.perform import Performer
from pubsub_jobs.settings import Settings, get_settings, naming_hint, project_resource_ids
from pubsub_jobs.worker.acks import ConfirmedAcks
from pubsub_jobs.worker.health import worker_status
from pubsub_jobs.worker.heartbeat import Heartbeat
from pubsub_jobs.worker.leases import LeaseKeeper
from pubsub_jobs.worker.options import QueueSpec, WorkerOptions
from pubsub_jobs.worker.ordering import KeyHolds, received_at, retry_wait
from pubsub_jobs.worker.status import StatusFileWriter, StatusServer
from pubsub_jobs.worker.streams import Streams

log = logging.getLogger(__name__)


class Worker:
    """Runs the jobs of some queues until stopped (or, in burst mode, until idle).

    ``options`` is a :class:`WorkerOptions`, or queues (``["default", "mailers=4"]``) with
    the other options as keywords: ``Worker(["default"], burst=True)``.
    """

    def __init__(
        self,
        options: WorkerOptions | Sequence[QueueSpec | str],
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        adapter: PubSubAdapter | None = None,
        middleware: Sequence[Middleware] | None = None,
        **option_values: Any,
    ) -> None:
        if not isinstance(options, WorkerOptions):
            options = WorkerOptions(queues=options, **option_values)
        elif option_values:
            options = options.model_copy(update=option_values)
        self.options = options
        self.queues = list(options.queues)
        self.settings = settings or get_settings()
        self.registry = registry if registry is not None else default_registry
        self.adapter = adapter or PubSubAdapter(self.settings)
        self.store = PubSubStore(self.adapter, self.settings)
        self.http: StatusServer | None = None
        self._status_writer: StatusFileWriter | None = None
        self._heartbeat: Heartbeat | None = None
        self._subscription_limits: dict[str, int] = {}
        #: Queues whose subscription delivers exactly once: acked with Pub/Sub's answer.
        self._exactly_once: dict[str, bool] = {}
        self.stats = DeliveryStats()
        self.error: StreamFailed | None = None
        if middleware is None:  # the settings' (PUBSUB_JOBS_MIDDLEWARE / --middleware)
            middleware = load_middleware(self.settings)
        self._performer = Performer(
            self.registry, self.settings, MiddlewareChain(middleware), AsyncRunner(),
            # the logging middleware writes one line per job: the core's would repeat it
            log_outcomes=not any(isinstance(m, StructuredLogging) for m in middleware),
        )
        self._stop_requested = threading.Event()
        self._stopping = threading.Event()
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._streams: Streams | None = None
        self._leases = LeaseKeeper(self.options.lease_seconds, self._running_messages)
        self._holds = KeyHolds()

    def run(self) -> bool:
        """Pull and run jobs until :meth:`request_stop` (or idle, in burst mode).

        Returns True when it stopped cleanly; False when a stream failed (see ``error``) or
        running jobs outlasted the shutdown timeout.
        """
        self.start()
        try:
            while self.error is None and not self._stop_requested.wait(0.05):
                if self._stream_failed() or (self.options.burst and self._idle()):
                    break
        finally:
            clean = self.stop()
        return clean and self.error is None

    def start(self) -> None:
        """Check the subscriptions, open the streams and return; jobs run in threads."""
        subscriber = self._subscriber = subscriber_client(self.settings)
        try:
            missing = self._check_subscriptions(subscriber)
        except BaseException:
            subscriber.close()
            self._subscriber = None
            raise
        if missing:  # every missing one named at once, before anything says "started"
            self.error = _missing_error([self.settings.subscription_path(q) for q in missing],
                                        missing, self._naming_hint(subscriber, missing))
            log.error("%s", self.error)
        options = self.options
        if options.http_port is not None:
            self.http = StatusServer(self.status, options.http_port, options.http_host).start()
        if options.status_file is not None:
            self._status_writer = StatusFileWriter(self.status, options.status_file).start()
        self._leases.start()
        self._streams = Streams(subscriber, self.settings, options)
        self._streams.open(self.queues, self._callback)
        if missing:
            return
        log.info(
            "worker started: %s",
            ", ".join(f"{q.name} (concurrency {q.concurrency}, {q.streams} stream(s))"
                      for q in self.queues),
        )
        self._heartbeat = Heartbeat(self.status, self.settings).start()  # for dashboards

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop; safe from signal handlers and other threads."""
        self._stop_requested.set()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop pulling, nack what has not started, wait for running jobs; see module doc."""
        timeout = self.options.shutdown_timeout if timeout is None else timeout
        self._stop_requested.set()
        self._stopping.set()
        self._performer.stopping.set()  # iterating jobs checkpoint after their current item
        clean = self._streams.close(timeout) if self._streams is not None else True
        if self._heartbeat is not None:  # the last beat says "stopped"
            self._heartbeat.stop()
        self._leases.stop()
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

    def _check_subscriptions(self, subscriber: pubsub_v1.SubscriberClient) -> list[str]:
        """The queues whose subscription is missing; refuse one without a dead-letter
        policy and warn where jobs, settings and subscription disagree
        (:func:`~pubsub_jobs.adapters.subscriptions.check_subscription`)."""
        missing = []
        for spec in self.queues:
            check = check_subscription(
                subscriber, spec.name, self.settings, self.registry,
                fix=f"`pubsub-jobs bootstrap --queue {spec.name} --update` (or Terraform)")
            if check.missing:
                missing.append(spec.name)
            if check.max_delivery_attempts is not None:
                self._subscription_limits[spec.name] = check.max_delivery_attempts
            self._exactly_once[spec.name] = check.exactly_once
            for warning in check.warnings:
                log.warning("%s", warning)
        return missing

    def _naming_hint(self, subscriber: pubsub_v1.SubscriberClient, missing: list[str]) -> str:
        """This worker's naming settings, and a missing queue's subscription under another
        prefix if the project has one (the project's subscriptions are listed for that)."""
        names = project_resource_ids(self.settings, lambda project: (
            subscriber.list_subscriptions(request={"project": project}, timeout=5.0)))
        hints = [naming_hint(self.settings, q, names, subscription=True) for q in missing]
        return max(hints, key=len)  # one that names a mismatch, if any does

    def status(self) -> dict[str, Any]:
        """What ``/status`` shows: ok or stuck (with reasons), queues, running jobs, counts."""
        failures = []
        if self._streams is not None and not self._stopping.is_set():
            failures += [f"a stream of queue {q} has failed" for q in self._streams.failed()]
        if self.error is not None:
            failures.append(str(self.error))
        return worker_status(
            self.stats,
            queues=self.queues,
            settings=self.settings,
            stuck_after=self.options.stuck_after,
            streams_running=self._streams.running() if self._streams is not None else {},
            failures=failures,
            subscription_limits=self._subscription_limits,
        )

    def _idle(self) -> bool:
        with self.stats.lock:
            return (
                self.stats.in_flight == 0
                and time.monotonic() - self.stats.last_activity >= self.options.burst_idle
            )

    def _stream_failed(self) -> bool:
        if self.error is not None:
            return True
        if self._streams is None or self._stopping.is_set():
            return False
        error = self._streams.failure()
        if error is None:
            return False
        self.error = error
        log.error("%s", error)
        return True

    def _running_messages(self) -> list[Message]:
        """The messages whose jobs run now, for the lease keeper."""
        with self.stats.lock:
            return [message for _, message, _ in self.stats.running.values()]

    def _callback(self, queue: str) -> Callable[[Message], None]:
        stats = self.stats
        lock = stats.lock
        counts = stats.counts
        running = stats.running
        stopping = self._stopping.is_set
        perform = self._performer.perform
        store = self.store
        count_outcome = stats.count_outcome
        monotonic = time.monotonic
        ack, cont, nack = Action.ACK, Action.CONTINUE, Action.NACK
        holds = self._holds
        retry_in_place = self._retry_in_place
        ack_message: Callable[[Message], None] = Message.ack
        nack_message: Callable[[Message], None] = Message.nack
        if self._exactly_once.get(queue):  # acked with Pub/Sub's answer, counted
            confirmed = ConfirmedAcks(queue, stats)
            ack_message, nack_message = confirmed.ack, confirmed.nack

        def nack_delivery(message: Message) -> None:
            self._nack(message, queue, nack_message)

        def on_message(message: Message) -> None:
            if stopping():
                nack_message(message)
                with lock:
                    counts["nacked_on_stop"] += 1
                return
            key = message.message_id
            ordering_key = message.ordering_key
            if ordering_key and holds and holds.put_back(queue, ordering_key, key,
                                                         received_at(message)):
                nack_message(message)  # an earlier message of its key was nacked: it runs first
                with lock:
                    counts["put_back"] += 1
                return
            now = monotonic()
            with lock:
                counts["received"] += 1
                stats.received_since_success += 1
                stats.in_flight += 1
                stats.last_activity = stats.last_received = now
                running[key] = (queue, message, now)  # the lease keeper renews it from here
            outcome: Outcome | None = None
            done = False
            try:
                delivery = Delivery(message.data, message.attributes, key,
                                    message.delivery_attempt, queue, message.publish_time)
                if ordering_key:
                    delivery.ordering_key = ordering_key
                outcome = perform(delivery)
                if ordering_key and outcome.action is nack:
                    outcome = retry_in_place(delivery, outcome)
                done = outcome.action is ack or settle(delivery, outcome, store)
                if done:
                    ack_message(message)
                else:
                    nack_delivery(message)
            except Exception:
                # A bug of ours or of a middleware: the message comes back, and after its
                # last delivery the subscription's own policy dead-letters it. The stream
                # goes on with the other messages.
                log.exception("unexpected error handling message %s; nacking it", key)
                nack_delivery(message)
                with lock:
                    counts["errors"] += 1
            except BaseException:
                nack_delivery(message)
                raise
            finally:
                now = monotonic()
                with lock:
                    stats.in_flight -= 1
                    running.pop(key, None)
                    stats.last_activity = now
                    if outcome is not None:
                        if done and (outcome.action is ack or outcome.action is cont):
                            stats.last_succeeded = now
                            stats.received_since_success = 0
                        count_outcome(outcome, done)

        return on_message

    def _retry_in_place(self, delivery: Delivery, outcome: Outcome) -> Outcome:
        """Run a failed job of an ordering key again here, after :func:`retry_wait`, until
        it no longer asks to be retried (see :mod:`.ordering`); a stop during the wait
        ends it with the last outcome (a nack: the key is put back)."""
        options = self.settings.queue_options(delivery.queue)
        first = delivery.attempt or 1
        failures = 0
        while outcome.action is Action.NACK and outcome.failed:
            failures += 1
            if self._stop_requested.wait(retry_wait(outcome, failures, options)):
                return outcome  # counted by the caller, as the delivery's last outcome
            with self.stats.lock:
                self.stats.count_outcome(outcome, False)
            delivery.attempt = first + failures
            delivery.decoded = None
            outcome = self._performer.perform(delivery)
        return outcome

    def _nack(self, message: Message, queue: str, nack: Callable[[Message], None]) -> None:
        """Nack ``message`` (with ``nack``); for one of an ordering key, put back the key's
        next messages until it comes back (see :mod:`.ordering`)."""
        nack(message)
        if message.ordering_key:
            seconds = self.settings.queue_options(queue).ack_deadline_seconds
            self._holds.hold(queue, message.ordering_key, message.message_id, seconds)


def _missing_error(paths: list[str], queues: list[str], naming: str) -> StreamFailed:
    command = "pubsub-jobs bootstrap " + " ".join(f"--queue {q}" for q in queues)
    what = (f"subscription {paths[0]} does not exist" if len(paths) == 1
            else f"subscriptions {', '.join(paths)} do not exist")
    return StreamFailed(f"{what}: run `{command}` (or Terraform) with the same settings: "
                        f"{naming}")
