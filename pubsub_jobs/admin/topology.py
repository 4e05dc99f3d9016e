"""The Pub/Sub resources of each queue, and ``bootstrap``, which creates them idempotently.

For queue ``Q`` and prefix ``jobs-``: topic ``jobs-Q``; worker subscription ``jobs-Q-worker``
with a dead-letter policy (to ``jobs-Q-dead-letter``) and an exponential retry policy;
dead-letter topic and subscription ``jobs-Q-dead-letter``. Terraform creates the same from
the same :class:`~pubsub_jobs.settings.QueueOptions`. When a Cloud Tasks location is
configured, ``bootstrap`` also creates the Cloud Tasks queue that holds delayed and unique
jobs (``jobs-delayed``), shared by every queue, and for each queue declared with
``rate_limit=N`` its own Cloud Tasks queue ``jobs-Q-rate`` dispatching at most N a second
(an existing one whose rate differs is changed to the declaration in place).

With ``push_endpoint`` (``bootstrap --push-endpoint URL``), the worker subscription is a
push subscription instead, to ``URL/push/Q`` (``URL`` is the push server's base URL), with
the same policies and an ack deadline of :data:`PUSH_ACK_DEADLINE`; on Google Cloud it sends
an OIDC token of ``push_service_account`` for ``push_audience`` (default: ``URL``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlsplit

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1
from google.protobuf import field_mask_pb2

from pubsub_jobs.adapters.clients import pubsub_clients
from pubsub_jobs.admin.tasks_queues import cloud_tasks_queue_spec as cloud_tasks_queue_spec
from pubsub_jobs.admin.tasks_queues import ensure_tasks_queues
from pubsub_jobs.errors import ConfigurationError, TopologyDrift
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import QueueOptions, Settings, get_settings

log = logging.getLogger(__name__)

#: Dead-letter subscriptions keep their messages for a person to see: long ack deadline.
DEAD_LETTER_ACK_DEADLINE = 60
#: Ack deadline of push subscriptions: how long Pub/Sub waits for the endpoint's answer
#: (Pub/Sub's longest; the push endpoint's ``PUSH_ACK_DEADLINE`` says the same).
PUSH_ACK_DEADLINE = 600


@dataclass(frozen=True, slots=True)
class QueueTopology:
    """Full resource paths and options of one queue."""

    queue: str
    topic: str
    subscription: str
    dead_letter_topic: str
    dead_letter_subscription: str
    options: QueueOptions
    #: Declared in code (:func:`pubsub_jobs.queue`): Pub/Sub message ordering and
    #: exactly-once delivery on the worker subscription, which cannot change in place.
    ordered: bool = False
    exactly_once: bool = False

    @classmethod
    def of(cls, queue: str, settings: Settings) -> QueueTopology:
        declared = declared_queue(queue)
        return cls(
            queue=queue,
            topic=settings.topic_path(queue),
            subscription=settings.subscription_path(queue),
            dead_letter_topic=settings.dead_letter_topic_path(queue),
            dead_letter_subscription=settings.dead_letter_subscription_path(queue),
            options=settings.queue_options(queue),
            ordered=declared is not None and declared.ordered,
            exactly_once=declared is not None and declared.exactly_once,
        )

    def worker_subscription(self) -> pubsub_v1.types.Subscription:
        o = self.options
        return pubsub_v1.types.Subscription(
            name=self.subscription,
            topic=self.topic,
            ack_deadline_seconds=o.ack_deadline_seconds,
            message_retention_duration=o.message_retention,
            dead_letter_policy=pubsub_v1.types.DeadLetterPolicy(
                dead_letter_topic=self.dead_letter_topic,
                max_delivery_attempts=o.max_delivery_attempts,
            ),
            retry_policy=pubsub_v1.types.RetryPolicy(
                minimum_backoff=o.min_retry_backoff, maximum_backoff=o.max_retry_backoff
            ),
            expiration_policy=pubsub_v1.types.ExpirationPolicy(),
            enable_message_ordering=self.ordered,
            enable_exactly_once_delivery=self.exactly_once,
        )

    def push_subscription(self, push_config: pubsub_v1.types.PushConfig
                          ) -> pubsub_v1.types.Subscription:
        """The worker subscription as a push subscription (see :func:`push_config`)."""
        if self.exactly_once:
            raise ConfigurationError(
                f"queue {self.queue!r} is declared exactly_once=True, which Pub/Sub offers "
                "on pull subscriptions only: run its jobs with `pubsub-jobs worker`, not "
                "push (bootstrap without --push-endpoint)")
        wanted = self.worker_subscription()
        wanted.push_config = push_config
        wanted.ack_deadline_seconds = PUSH_ACK_DEADLINE
        return wanted

    def dead_letter_subscription_spec(self) -> pubsub_v1.types.Subscription:
        return pubsub_v1.types.Subscription(
            name=self.dead_letter_subscription,
            topic=self.dead_letter_topic,
            ack_deadline_seconds=DEAD_LETTER_ACK_DEADLINE,
            message_retention_duration=self.options.dead_letter_retention,
            expiration_policy=pubsub_v1.types.ExpirationPolicy(),
        )


@dataclass
class BootstrapReport:
    """What ``bootstrap`` did: resources created, already there, differing, updated."""

    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: dict[str, list[str]] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift

    def raise_for_drift(self) -> BootstrapReport:
        """Raise :class:`~pubsub_jobs.errors.TopologyDrift` listing what differs, if anything."""
        if self.drift:
            differences = [f"{name}: {d}" for name, diffs in self.drift.items() for d in diffs]
            raise TopologyDrift(
                "subscriptions differ from the settings (bootstrap(..., update=True) or "
                "`pubsub-jobs bootstrap --update` applies them):\n  " + "\n  ".join(differences),
                differences,
            )
        return self


#: What Pub/Sub cannot change in a subscription, and the declaration's name of each.
IMMUTABLE = {"enable_message_ordering": "ordered",
             "enable_exactly_once_delivery": "exactly_once"}

_COMPARED = ("topic", "ack_deadline_seconds", "message_retention_duration",
             "dead_letter_policy", "retry_policy", "push_config")


def _differences(actual: pubsub_v1.types.Subscription,
                 wanted: pubsub_v1.types.Subscription) -> list[str]:
    diffs = []
    for name in _COMPARED:
        have, want = _describe(getattr(actual, name)), _describe(getattr(wanted, name))
        if have != want:
            diffs.append(f"{name}: is {have}, configured {want}")
    return diffs


def _describe(value: object) -> str:
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, pubsub_v1.types.DeadLetterPolicy):
        if not value.dead_letter_topic:
            return "none"
        return f"{{topic {value.dead_letter_topic}, max {value.max_delivery_attempts}}}"
    if isinstance(value, pubsub_v1.types.RetryPolicy):
        lo, hi = value.minimum_backoff, value.maximum_backoff
        if not lo and not hi:
            return "none (immediate redelivery)"
        return f"{{min {_describe(lo)}, max {_describe(hi)}}}"
    if isinstance(value, pubsub_v1.types.PushConfig):
        if not value.push_endpoint:
            return "pull"
        token = value.oidc_token
        oidc = (f" with OIDC tokens of {token.service_account_email} for {token.audience}"
                if token.service_account_email else "")
        return f"push to {value.push_endpoint}{oidc}"
    return str(value)


def bootstrap(
    queues: Iterable[str],
    settings: Settings | None = None,
    *,
    update: bool = False,
    push_endpoint: str | None = None,
) -> BootstrapReport:
    """Create every queue's topics and subscriptions; existing ones are compared, not changed.

    A declared queue (:func:`pubsub_jobs.queue`) gets its ordering and exactly-once
    delivery on the worker subscription; an existing one that differs in either raises
    :class:`~pubsub_jobs.errors.ConfigurationError` (Pub/Sub cannot change them in place).
    A worker subscription whose policies differ from the settings is reported in
    ``report.drift``; with ``update=True`` it is changed to the settings instead (the topic
    of a subscription cannot change: delete it to move it). With ``push_endpoint``, the
    push server's base URL, each worker subscription pushes to ``push_endpoint/push/Q``
    (see :func:`push_config`); an existing pull subscription is drift, which ``update``
    turns into push (and back, without ``push_endpoint``).
    """
    settings = settings or get_settings()
    report = BootstrapReport()
    queues = list(queues)
    pushes = {q: push_config(q, push_endpoint, settings) for q in queues} if push_endpoint else {}
    # Every worker subscription is built before anything is created, so a queue that cannot
    # be pushed (declared exactly_once: pull only) is refused with nothing made.
    topologies = {q: QueueTopology.of(q, settings) for q in queues}
    workers = {q: (topo.push_subscription(pushes[q]) if q in pushes
                   else topo.worker_subscription()) for q, topo in topologies.items()}
    heartbeats = settings.workers_topic_path()
    limited = rate_limited_queues(queues)
    if limited and not settings.cloud_tasks_location:  # before anything is created
        raise ConfigurationError(
            f"queue {limited[0]!r} is declared with rate_limit, so its jobs go through a Cloud "
            "Tasks queue of its own: set PUBSUB_JOBS_CLOUD_TASKS_LOCATION (e.g. us-central1) "
            "and run bootstrap again")
    if any(settings.topic_path(q) == heartbeats for q in queues):
        raise ConfigurationError(f"queue name 'workers' is taken: its topic would be "
                                 f"{heartbeats}, the workers' heartbeats; choose another name")
    with pubsub_clients(settings) as (publisher, subscriber):
        try:  # the workers' heartbeats (pubsub-jobs dashboard reads them); not in the report
            publisher.create_topic(name=heartbeats)
        except gexc.AlreadyExists:
            pass
        for queue in queues:
            topo = topologies[queue]
            for topic in (topo.topic, topo.dead_letter_topic):
                try:
                    publisher.create_topic(name=topic)
                    report.created.append(topic)
                except gexc.AlreadyExists:
                    report.existing.append(topic)
            worker = workers[queue]
            _ensure_subscription(subscriber, topo.dead_letter_subscription_spec(), report,
                                 update)
            # Ordering and exactly-once are checked for declared queues only: a queue no
            # module declares keeps whatever its subscription was made with.
            _ensure_subscription(subscriber, worker, report, update,
                                 declared=declared_queue(queue) is not None)
        if settings.cloud_tasks_location:
            ensure_cloud_tasks_queue(settings, report, rate_limited=limited)
    return report


def rate_limited_queues(queues: Iterable[str]) -> list[str]:
    """The queues of ``queues`` declared with ``rate_limit``."""
    return [q for q in queues
            if (declared := declared_queue(q)) is not None and declared.rate_limit is not None]


def push_config(queue: str, base_url: str, settings: Settings) -> pubsub_v1.types.PushConfig:
    """Push to ``base_url/push/QUEUE``: on Google Cloud over HTTPS with an OIDC token of
    ``push_service_account`` for ``push_audience`` (default ``base_url``), which the push
    server verifies; the emulator sends no token and accepts plain HTTP."""
    parts = urlsplit(base_url)
    emulator = bool(settings.pubsub_emulator_host)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ConfigurationError(f"--push-endpoint {base_url!r}: give the push server's base "
                                 "URL, e.g. https://jobs-abc123-uc.a.run.app")
    if "/push/" in f"{parts.path}/":
        raise ConfigurationError(f"--push-endpoint {base_url!r}: give the server's base URL; "
                                 "/push/QUEUE is added for each queue")
    if parts.scheme != "https" and not emulator:
        raise ConfigurationError(f"--push-endpoint {base_url!r}: Pub/Sub pushes only to "
                                 "https URLs")
    endpoint = f"{base_url.rstrip('/')}/push/{queue}"
    if emulator and not settings.push_service_account:
        return pubsub_v1.types.PushConfig(push_endpoint=endpoint)
    if not settings.push_service_account:
        raise ConfigurationError(
            "a push subscription needs PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT: the service account "
            "whose OIDC token Pub/Sub sends and the push server verifies (give Pub/Sub's "
            "service agent roles/iam.serviceAccountTokenCreator on it)"
        )
    return pubsub_v1.types.PushConfig(
        push_endpoint=endpoint,
        oidc_token=pubsub_v1.types.PushConfig.OidcToken(
            service_account_email=settings.push_service_account,
            audience=settings.push_audience or base_url.rstrip("/"),
        ),
    )


def ensure_cloud_tasks_queue(
    settings: Settings | None = None, report: BootstrapReport | None = None,
    *, rate_limited: Iterable[str] = (),
) -> str:
    """Create the Cloud Tasks queue of delayed jobs if it does not exist, and the ``-rate``
    queue of each of ``rate_limited`` (declared with ``rate_limit``): created with the
    declared rate, or changed to it in place when it differs (see
    :mod:`pubsub_jobs.admin.tasks_queues`). Returns the first's name."""
    done = ensure_tasks_queues(settings or get_settings(), rate_limited)
    if report is not None:
        for name, what in done:
            getattr(report, what).append(name)
    return done[0][0]


def _ensure_subscription(
    subscriber: pubsub_v1.SubscriberClient,
    wanted: pubsub_v1.types.Subscription,
    report: BootstrapReport,
    update: bool,
    *,
    declared: bool = False,
) -> None:
    try:
        subscriber.create_subscription(request=wanted)
        report.created.append(wanted.name)
        return
    except gexc.AlreadyExists:
        pass
    actual = subscriber.get_subscription(subscription=wanted.name)
    if declared:
        refuse_immutable_differences(actual, wanted)
    diffs = _differences(actual, wanted)
    if not diffs:
        report.existing.append(wanted.name)
        return
    if update and actual.topic == wanted.topic:
        paths = [n for n in _COMPARED[1:]
                 if _describe(getattr(actual, n)) != _describe(getattr(wanted, n))]
        subscriber.update_subscription(
            request={"subscription": wanted,
                     "update_mask": field_mask_pb2.FieldMask(paths=paths)}
        )
        report.updated.append(wanted.name)
        log.warning("updated %s: %s", wanted.name, "; ".join(diffs))
        return
    report.drift[wanted.name] = diffs


def immutable_differences(actual: pubsub_v1.types.Subscription,
                          wanted: pubsub_v1.types.Subscription) -> list[str]:
    """``ordered=False where the queue is declared ordered=True``: what differs that
    Pub/Sub cannot change in place (message ordering, exactly-once delivery)."""
    return [f"{declared}={bool(getattr(actual, name))} where the queue is declared "
            f"{declared}={bool(getattr(wanted, name))}"
            for name, declared in IMMUTABLE.items()
            if bool(getattr(actual, name)) != bool(getattr(wanted, name))]


def refuse_immutable_differences(actual: pubsub_v1.types.Subscription,
                                 wanted: pubsub_v1.types.Subscription) -> None:
    """Raise :class:`~pubsub_jobs.errors.ConfigurationError` when an existing subscription's
    ordering or exactly-once setting differs from the declaration (``--update`` cannot
    change them: Pub/Sub fixes both when it creates a subscription)."""
    found = immutable_differences(actual, wanted)
    if found:
        raise ConfigurationError(
            f"{wanted.name} has {' and '.join(found)}: Pub/Sub cannot "
            "change a subscription's message ordering or exactly-once delivery in place, so "
            "make a new subscription: delete this one (its undelivered messages go with it) "
            "and run bootstrap again, or use another prefix (PUBSUB_JOBS_PREFIX)")


def delete_topology(queues: Iterable[str], settings: Settings | None = None) -> None:
    """Delete every queue's topics and subscriptions (tests, and tearing down a dev project)."""
    settings = settings or get_settings()
    with pubsub_clients(settings) as (publisher, subscriber):
        for queue in queues:
            topo = QueueTopology.of(queue, settings)
            for sub in (topo.subscription, topo.dead_letter_subscription):
                try:
                    subscriber.delete_subscription(subscription=sub)
                except gexc.NotFound:
                    pass
            for topic in (topo.topic, topo.dead_letter_topic):
                try:
                    publisher.delete_topic(topic=topic)
                except gexc.NotFound:
                    pass
