"""The push endpoint's work, whichever server carries it (ASGI, WSGI, a Django view).

A request goes through these steps, each refusing with
:class:`~pubsub_jobs.errors.PushRefused` before the next is reached:

1. ``GET /healthz`` answers 200 at once (it tells nothing);
2. :meth:`PushHandler.authenticate`: the OIDC token (401, 403), before anything of the
   request is read or trusted, so the unauthenticated learn nothing, not even which queues
   exist;
3. :meth:`PushHandler.route`: ``POST /push/QUEUE`` for a queue served here (404, 405);
4. the body, at most 10 MB (413), must be a push envelope (400);
5. :meth:`PushHandler.process`: the core's ``perform`` runs the job and decides its
   :class:`~pubsub_jobs.outcome.Outcome`, carried out as an HTTP status:

============================================================  ===========================
outcome                                                       answer
============================================================  ===========================
job returned; exception in ``discard_on``                     204
dead-letter (any reason), our copy stored                     204
rescheduled (``Retry(delay=...)``), Cloud Tasks confirmed     204
an iterating job checkpointed, its continuation published     204
job to be retried                                             503: Pub/Sub redelivers
long-wait retry of a job with an ordering key                 503, never Cloud Tasks
dead-letter copy, reschedule or continuation not stored       503: Pub/Sub redelivers
an unexpected error of ours or of a middleware                500: Pub/Sub redelivers
the message was done with here already                        204, not run again
the message is running here (delivered again past its ack     503, left to that run
deadline)
============================================================  ===========================

Attempts come from the envelope's ``deliveryAttempt``. Pub/Sub sends it only for
subscriptions with a dead-letter policy (``bootstrap`` and Terraform always give one), and
the emulator never does; without it, deliveries of each message are counted in this process,
so a failing job still ends dead-lettered after ``max_attempts`` (one count per instance:
with several instances a message may be tried more often).
"""

from __future__ import annotations

import http
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pubsub_jobs._async_runner import AsyncRunner
from pubsub_jobs.adapters.delivery_store import PubSubStore
from pubsub_jobs.adapters.pubsub import PubSubAdapter
from pubsub_jobs.delivery import Delivery, DeliveryStats, settle
from pubsub_jobs.errors import ConfigurationError, PushRefused
from pubsub_jobs.jobs import Registry, default_registry
from pubsub_jobs.middleware import Middleware, MiddlewareChain, load_middleware
from pubsub_jobs.perform import Performer
from pubsub_jobs.push.auth import TokenVerifier
from pubsub_jobs.push.deliveries import Deliveries
from pubsub_jobs.push.envelope import (
    MAX_BODY_BYTES,
    PushedMessage,
    check_length,
    parse_content_length,
    parse_envelope,
    too_large,
)
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)

#: Jobs a push endpoint runs at once, unless told otherwise.
DEFAULT_CONCURRENCY = 10
#: The ack deadline ``bootstrap`` gives push subscriptions (Pub/Sub's longest): how long
#: Pub/Sub waits for an answer before it delivers the message again.
PUSH_ACK_DEADLINE = 600
HEALTH_PATH = "/healthz"
PUSH_PREFIX = "/push/"


@dataclass(frozen=True, slots=True)
class PushResponse:
    """What to answer: a status, a short text body and headers."""

    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, status: int, *headers: tuple[str, str]) -> PushResponse:
        """A response whose body is the status' reason phrase (none for 204)."""
        body = b"" if status == 204 else f"{http.HTTPStatus(status).phrase}\n".encode()
        return cls(status, body, headers)


class PushHandler:
    """Answers push requests for ``queues``: authenticates, runs the job, says how it went.

    At most ``concurrency`` jobs run at once, whatever the server's own threads. Built from
    the settings (``push_auth`` and the rest: a wrong combination raises
    :class:`~pubsub_jobs.errors.ConfigurationError` here) and the settings' middleware,
    as the pull worker is.
    """

    def __init__(
        self,
        queues: Sequence[str],
        *,
        settings: Settings | None = None,
        registry: Registry | None = None,
        middleware: Sequence[Middleware] | None = None,
        adapter: PubSubAdapter | None = None,
        verifier: TokenVerifier | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        if not queues:
            raise ConfigurationError("a push endpoint needs at least one queue (--queue NAME)")
        if concurrency < 1:
            raise ConfigurationError("a push endpoint's concurrency is at least 1")
        self.queues = tuple(dict.fromkeys(queues))
        _refuse_exactly_once(self.queues)
        self.settings = settings or get_settings()
        self.verifier = verifier or TokenVerifier(self.settings)
        self.concurrency = concurrency
        self.registry = registry if registry is not None else default_registry
        self.adapter = adapter or PubSubAdapter(self.settings)
        self._owns_adapter = adapter is None
        self.store = PubSubStore(self.adapter, self.settings)
        if middleware is None:  # the settings' (PUBSUB_JOBS_MIDDLEWARE / --middleware)
            middleware = load_middleware(self.settings)
        self.performer = Performer(
            self.registry, self.settings, MiddlewareChain(middleware), AsyncRunner()
        )
        self.stats = DeliveryStats()
        warn_long_jobs(self.queues, self.registry)
        self._slots = threading.BoundedSemaphore(concurrency)
        self._deliveries = Deliveries()
        self._warned: set[tuple[str, str]] = set()

    def handle(
        self,
        method: str,
        path: str,
        authorization: str | None,
        content_length: str | None,
        read: Callable[[int], bytes],
    ) -> PushResponse:
        """Every step for a synchronous server (WSGI, Django): ``content_length`` is the
        header's value, ``read(n)`` reads up to ``n`` bytes of the body."""
        try:
            if method == "GET" and path == HEALTH_PATH:
                return PushResponse(200, b"ok\n")
            self.authenticate(authorization)
            queue = self.route(method, path)
            length = parse_content_length(content_length)
            check_length(length)
            body = read(length if length is not None else MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise too_large()
            return self.process(queue, body)
        except PushRefused as exc:
            return self.refused(exc, path)

    def authenticate(self, authorization: str | None) -> None:
        """Verify the request's token; :class:`PushRefused` 401/403/503 otherwise."""
        self.verifier.verify(authorization)

    def route(self, method: str, path: str) -> str:
        """The queue of ``POST /push/QUEUE``; :class:`PushRefused` 404 or 405 otherwise."""
        queue = path[len(PUSH_PREFIX):] if path.startswith(PUSH_PREFIX) else ""
        if queue not in self.queues:
            raise PushRefused(404, f"no queue {queue!r} is served here (serving "
                                   f"{', '.join(self.queues)})" if queue else "no such path")
        if method != "POST":
            raise PushRefused(405, f"{method} {path}: push requests are POSTs")
        return queue

    def process(self, queue: str, body: bytes) -> PushResponse:
        """Run the pushed message's job and answer with its outcome (see the module doc)."""
        pushed = parse_envelope(body)
        key = (queue, pushed.message_id)
        seen = self._deliveries.begin(key)
        if seen is not None:
            # Pub/Sub delivers at least once: a message done here is not run again, and one
            # running here (past the ack deadline) is left to that run.
            log.info("message %s of queue %s delivered again while %s here", pushed.message_id,
                     queue, "already done" if seen == "done" else "running")
            with self.stats.lock:
                self.stats.counts["duplicates"] += 1
            return PushResponse.of(204 if seen == "done" else 503)
        done = False
        try:
            done, response = self._run(queue, pushed)
        finally:
            self._deliveries.end(key, done=done)
        return response

    def _run(self, queue: str, pushed: PushedMessage) -> tuple[bool, PushResponse]:
        """Perform and settle; (whether the message is done with, the answer)."""
        attempt = pushed.delivery_attempt
        if attempt is None:
            attempt = self._deliveries.count((queue, pushed.message_id))
            self._warn_once(queue, "no-attempt", _NO_ATTEMPT, queue)
        if pushed.subscription != self.settings.subscription_path(queue):
            self._warn_once(queue, pushed.subscription, _OTHER_SUBSCRIPTION,
                            pushed.subscription, queue, queue)
        stats = self.stats
        with stats.lock:
            stats.counts["received"] += 1
            stats.in_flight += 1
        delivery = Delivery(pushed.data, pushed.attributes, pushed.message_id, attempt, queue,
                            pushed.publish_time)
        delivery.ordering_key = pushed.ordering_key or _unknown_key(queue)
        try:
            with self._slots:
                outcome = self.performer.perform(delivery)
                done = settle(delivery, outcome, self.store)
        except Exception:
            # A bug of ours or of a middleware: Pub/Sub delivers it again, and after its last
            # attempt the subscription's own policy dead-letters it.
            log.exception("unexpected error handling pushed message %s of queue %s",
                          pushed.message_id, queue)
            with stats.lock:
                stats.counts["errors"] += 1
            return False, PushResponse.of(500)
        finally:
            with stats.lock:
                stats.in_flight -= 1
        with stats.lock:
            stats.count_outcome(outcome, done)
        if outcome.duration > PUSH_ACK_DEADLINE:
            log.warning("a job of queue %s ran %.0f s, past the push ack deadline (%d s): "
                        "Pub/Sub delivered its message again meanwhile; run jobs this long "
                        "on the pull worker", queue, outcome.duration, PUSH_ACK_DEADLINE)
        return done, PushResponse.of(204 if done else 503)

    def refused(self, exc: PushRefused, path: str) -> PushResponse:
        """The answer to a refused request, logged with its reason."""
        with self.stats.lock:
            self.stats.counts["refused"] += 1
        log.warning("push request to %s refused (%d): %s", path, exc.status, exc)
        if exc.status == 401:
            return PushResponse.of(401, ("WWW-Authenticate", 'Bearer error="invalid_token"'))
        return PushResponse.of(exc.status)

    def close(self) -> None:
        """Stop the event loop of async jobs and close the adapter this handler made."""
        self.performer.close()
        if self._owns_adapter:
            self.adapter.close()

    def _warn_once(self, queue: str, key: str, message: str, *args: Any) -> None:
        if (queue, key) in self._warned:
            return
        self._warned.add((queue, key))
        if key == "no-attempt" and self.settings.pubsub_emulator_host:
            log.info("queue %s: the emulator sends no deliveryAttempt; counting deliveries "
                     "in this process", queue)
            return
        log.warning(message, *args)


def _unknown_key(queue: str) -> str:
    """What a message pushed without ``orderingKey`` counts as: on a queue declared ordered,
    a job of an unknown key (the emulator's pushes carry none), so it is never rescheduled
    through Cloud Tasks (it answers 503 instead); elsewhere, a job without a key."""
    declared = declared_queue(queue)
    return "?" if declared is not None and declared.ordered else ""


def warn_long_jobs(queues: Sequence[str], registry: Registry) -> list[str]:
    """Warn about jobs of ``queues`` that declare they run past :data:`PUSH_ACK_DEADLINE`.

    Jobs have no timeout option; iterating jobs declare how long a stretch runs before it
    checkpoints (``checkpoint_every``), and a stretch longer than the deadline is delivered
    again while it runs. Other long jobs show only when they ran (see ``process``)."""
    found = []
    for job in registry:
        every = getattr(job, "checkpoint_every", None)
        if (job.queue in queues and getattr(job, "is_iterating", False)
                and isinstance(every, float) and every >= PUSH_ACK_DEADLINE):
            found.append(f"job {job.name} checkpoints every {every:.0f} s, but a push request "
                         f"may last {PUSH_ACK_DEADLINE} s: give it checkpoint_every=300, or "
                         f"run queue {job.queue} on the pull worker")
    for warning in found:
        log.warning("%s", warning)
    return found


_NO_ATTEMPT = (
    "pushes to queue %s carry no deliveryAttempt, so their subscription has no dead-letter "
    "policy: counting deliveries in this process instead (each instance counts its own); "
    "run `pubsub-jobs bootstrap --push-endpoint URL --update` or give it one in Terraform"
)
_OTHER_SUBSCRIPTION = (
    "a message of subscription %s was pushed to /push/%s, which is not that queue's "
    "subscription; queue %s decides its retries and dead letters"
)


class LazyHandler:
    """A :class:`PushHandler` built on first use, once: an application object made at
    import time reads no settings and opens no client until it serves (or is started)."""

    def __init__(self, queues: Sequence[str], **options: Any) -> None:
        self._queues = list(queues)
        self._options = options
        self._handler: PushHandler | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> PushHandler | None:
        return self._handler

    def get(self) -> PushHandler:
        handler = self._handler
        if handler is None:
            with self._lock:
                if self._handler is None:
                    self._handler = PushHandler(self._queues, **self._options)
                handler = self._handler
        return handler

    def close(self) -> None:
        with self._lock:
            handler, self._handler = self._handler, None
        if handler is not None:
            handler.close()


def _refuse_exactly_once(queues: Sequence[str]) -> None:
    """A queue declared ``exactly_once`` is not served by push: Pub/Sub offers exactly-once
    delivery on pull subscriptions only, so its jobs would run at least once here."""
    for queue in queues:
        declared = declared_queue(queue)
        if declared is not None and declared.exactly_once:
            raise ConfigurationError(
                f"queue {queue!r} is declared exactly_once=True ({declared.origin}), which "
                "Pub/Sub offers on pull subscriptions only, so a push endpoint cannot serve "
                f"it: run its jobs with `pubsub-jobs worker --queue {queue}` and leave it out "
                "of the push endpoint's queues")
