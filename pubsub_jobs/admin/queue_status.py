"""What ``pubsub-jobs queues`` shows: each queue's topics, subscriptions, policies, backlog.

Pub/Sub's API does not tell how many messages a subscription holds; Cloud Monitoring does
(``subscription/num_undelivered_messages``, ``oldest_unacked_message_age``), a few minutes
late. That needs the optional ``google-cloud-monitoring`` package
(``pip install 'pubsub-jobs[monitoring]'``), imported only here and only when asked. The
emulator has no metrics at all: there the backlog is unknown, and the dead set can be
counted by reading it (``count_dead=True``).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Literal

from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from pubsub_jobs.adapters.clients import publisher_client, pubsub_clients
from pubsub_jobs.admin.topology import QueueTopology, _differences, immutable_differences
from pubsub_jobs.dead.subscription import DeadSet
from pubsub_jobs.errors import describe
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings, get_settings

__all__ = ["QueueStatus", "SubscriptionStatus", "discover_queues", "queue_status"]

MONITORING_HINT = "install Cloud Monitoring support: pip install 'pubsub-jobs[monitoring]'"
EMULATOR_NOTE = (
    "unknown on the emulator, which keeps no Cloud Monitoring metrics "
    "(--count-dead counts the dead set by reading it)"
)

Role = Literal["worker", "dead-letter", "other"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SubscriptionStatus:
    """One subscription of a queue: its policies, how they differ from the settings, and
    its backlog when Cloud Monitoring can tell (``None``: unknown)."""

    name: str
    role: Role
    exists: bool
    topic: str | None = None
    ack_deadline_seconds: int | None = None
    message_retention: timedelta | None = None
    dead_letter_topic: str | None = None
    max_delivery_attempts: int | None = None
    min_retry_backoff: timedelta | None = None
    max_retry_backoff: timedelta | None = None
    filter: str = ""
    exactly_once: bool = False
    ordering: bool = False
    drift: tuple[str, ...] = ()
    backlog: int | None = None
    oldest_unacked_seconds: float | None = None

    def to_json(self) -> dict[str, Any]:
        def seconds(value: timedelta | None) -> float | None:
            return value.total_seconds() if value is not None else None

        return {
            "name": self.name,
            "role": self.role,
            "exists": self.exists,
            "topic": self.topic,
            "ack_deadline_seconds": self.ack_deadline_seconds,
            "message_retention_seconds": seconds(self.message_retention),
            "dead_letter_topic": self.dead_letter_topic,
            "max_delivery_attempts": self.max_delivery_attempts,
            "min_retry_backoff_seconds": seconds(self.min_retry_backoff),
            "max_retry_backoff_seconds": seconds(self.max_retry_backoff),
            "filter": self.filter,
            "exactly_once": self.exactly_once,
            "ordering": self.ordering,
            "drift": list(self.drift),
            "backlog": self.backlog,
            "oldest_unacked_seconds": self.oldest_unacked_seconds,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueStatus:
    """One queue: its topics, subscriptions, and what is known of its backlog.

    ``backlog_note`` says why backlogs are unknown, when they are; ``dead_jobs`` is the
    number of messages in the dead set when it was counted (``count_dead=True``).
    """

    queue: str
    topic: str
    topic_exists: bool
    dead_letter_topic: str
    dead_letter_topic_exists: bool
    subscriptions: tuple[SubscriptionStatus, ...]
    backlog_note: str | None = None
    dead_jobs: int | None = None

    @property
    def ok(self) -> bool:
        """Every resource exists and matches the settings."""
        return (self.topic_exists and self.dead_letter_topic_exists
                and all(s.exists and not s.drift for s in self.subscriptions))

    def to_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "topic": self.topic,
            "topic_exists": self.topic_exists,
            "dead_letter_topic": self.dead_letter_topic,
            "dead_letter_topic_exists": self.dead_letter_topic_exists,
            "subscriptions": [s.to_json() for s in self.subscriptions],
            "backlog_note": self.backlog_note,
            "dead_jobs": self.dead_jobs,
        }


def discover_queues(settings: Settings | None = None) -> list[str]:
    """Queues whose topic exists in the project: topics named ``<prefix>Q`` (the
    ``-dead-letter`` ones belong to their queue)."""
    settings = settings or get_settings()
    publisher = publisher_client(settings)
    try:
        names = [
            topic.name.rsplit("/", 1)[-1]
            for topic in publisher.list_topics(project=f"projects/{settings.require_project()}")
        ]
    finally:
        publisher.stop()
    prefix, heartbeats = settings.prefix, settings.workers_topic_path().rsplit("/", 1)[-1]
    queues = {n[len(prefix):] for n in names if n.startswith(prefix) and n != heartbeats}
    return sorted(q for q in queues
                  if q and not (q.endswith("-dead-letter") and q[: -len("-dead-letter")] in queues))


def queue_status(
    queues: Iterable[str] | None = None,
    settings: Settings | None = None,
    *,
    count_dead: bool = False,
    backlog: bool = True,
) -> list[QueueStatus]:
    """The status of ``queues`` (default: every queue found in the project).

    ``backlog=False`` skips Cloud Monitoring; ``count_dead=True`` counts each dead set by
    reading it (pull and release at once, see :mod:`pubsub_jobs.dead.subscription`).
    """
    settings = settings or get_settings()
    names = list(queues) if queues is not None else discover_queues(settings)
    with pubsub_clients(settings) as (publisher, subscriber):
        raw = [_raw_status(q, settings, publisher, subscriber) for q in names]
    metrics, note = _backlogs(settings, [s.name for q in raw for s in q.subscriptions], backlog)
    result = []
    for status in raw:
        subs = tuple(_with_backlog(s, metrics) for s in status.subscriptions)
        dead_jobs = None
        if count_dead and status.dead_letter_topic_exists:
            with DeadSet(status.queue, settings) as dead:
                dead_jobs = dead.count()
        result.append(QueueStatus(
            queue=status.queue,
            topic=status.topic,
            topic_exists=status.topic_exists,
            dead_letter_topic=status.dead_letter_topic,
            dead_letter_topic_exists=status.dead_letter_topic_exists,
            subscriptions=subs,
            backlog_note=note,
            dead_jobs=dead_jobs,
        ))
    return result


def _raw_status(
    queue: str,
    settings: Settings,
    publisher: pubsub_v1.PublisherClient,
    subscriber: pubsub_v1.SubscriberClient,
) -> QueueStatus:
    topo = QueueTopology.of(queue, settings)
    expected: dict[str, tuple[Role, pubsub_v1.types.Subscription]] = {
        topo.subscription: ("worker", topo.worker_subscription()),
        topo.dead_letter_subscription: ("dead-letter", topo.dead_letter_subscription_spec()),
    }
    exists: dict[str, bool] = {}
    attached: list[str] = []
    for topic in (topo.topic, topo.dead_letter_topic):
        try:
            publisher.get_topic(topic=topic)
            attached += list(publisher.list_topic_subscriptions(topic=topic))
            exists[topic] = True
        except gexc.NotFound:
            exists[topic] = False
    names = list(dict.fromkeys([*expected, *attached]))
    subs = []
    for name in names:
        role, wanted = expected.get(name, ("other", None))
        try:
            actual = subscriber.get_subscription(subscription=name)
        except gexc.NotFound:
            subs.append(SubscriptionStatus(name=name, role=role, exists=False))
            continue
        # A declared queue's ordering and exactly-once delivery are compared too.
        immutable = (immutable_differences(actual, wanted)
                     if role == "worker" and wanted is not None and declared_queue(queue)
                     else [])
        subs.append(_describe(actual, role, wanted, immutable))
    return QueueStatus(
        queue=queue,
        topic=topo.topic,
        topic_exists=exists[topo.topic],
        dead_letter_topic=topo.dead_letter_topic,
        dead_letter_topic_exists=exists[topo.dead_letter_topic],
        subscriptions=tuple(subs),
    )


def _describe(
    sub: pubsub_v1.types.Subscription, role: Role, wanted: pubsub_v1.types.Subscription | None,
    immutable: list[str] | None = None,
) -> SubscriptionStatus:
    dlp, retry = sub.dead_letter_policy, sub.retry_policy
    has_retry = bool(retry.minimum_backoff or retry.maximum_backoff)
    return SubscriptionStatus(
        name=sub.name,
        role=role,
        exists=True,
        topic=sub.topic,
        ack_deadline_seconds=sub.ack_deadline_seconds,
        message_retention=_timedelta(sub.message_retention_duration),
        dead_letter_topic=dlp.dead_letter_topic or None,
        max_delivery_attempts=dlp.max_delivery_attempts if dlp.dead_letter_topic else None,
        min_retry_backoff=_timedelta(retry.minimum_backoff) if has_retry else None,
        max_retry_backoff=_timedelta(retry.maximum_backoff) if has_retry else None,
        filter=sub.filter,
        exactly_once=sub.enable_exactly_once_delivery,
        ordering=sub.enable_message_ordering,
        drift=(*(_differences(sub, wanted) if wanted is not None else ()), *(immutable or ())),
    )


def _timedelta(value: Any) -> timedelta | None:
    if isinstance(value, timedelta):
        return value
    return None


def _with_backlog(
    sub: SubscriptionStatus, metrics: dict[str, tuple[int | None, float | None]]
) -> SubscriptionStatus:
    count, age = metrics.get(sub.name.rsplit("/", 1)[-1], (None, None))
    if count is None and age is None:
        return sub
    return replace(sub, backlog=count, oldest_unacked_seconds=age)


def _backlogs(
    settings: Settings, subscriptions: list[str], wanted: bool
) -> tuple[dict[str, tuple[int | None, float | None]], str | None]:
    """Latest backlog and oldest unacked age per subscription id, and a note when unknown."""
    if not wanted:
        return {}, "not asked for"
    if settings.pubsub_emulator_host:
        return {}, EMULATOR_NOTE
    try:
        monitoring_v3: Any = importlib.import_module("google.cloud.monitoring_v3")
    except ImportError:
        return {}, f"unknown: {MONITORING_HINT}"
    ids = {name.rsplit("/", 1)[-1] for name in subscriptions}
    found: dict[str, list[Any]] = {i: [None, None] for i in ids}
    try:
        client = monitoring_v3.MetricServiceClient()
        now = int(time.time())
        interval = monitoring_v3.TimeInterval(
            {"end_time": {"seconds": now}, "start_time": {"seconds": now - 600}}
        )
        for slot, metric in enumerate(("num_undelivered_messages", "oldest_unacked_message_age")):
            series = client.list_time_series(request={
                "name": f"projects/{settings.require_project()}",
                "filter": (
                    f'metric.type = "pubsub.googleapis.com/subscription/{metric}" AND '
                    f'resource.labels.subscription_id = starts_with("{settings.prefix}")'
                ),
                "interval": interval,
                "view": monitoring_v3.ListTimeSeriesRequest.TimeSeriesView.FULL,
            })
            for ts in series:
                sub_id = ts.resource.labels.get("subscription_id")
                if sub_id in found and ts.points:
                    found[sub_id][slot] = ts.points[0].value.int64_value  # newest first
    except Exception as exc:
        return {}, f"unknown: Cloud Monitoring answered {describe(exc)}"
    note = None
    if any(v == [None, None] for v in found.values()):
        note = ("Cloud Monitoring had no point in the last 10 minutes for some subscriptions "
                "(its metrics lag a few minutes)")
    return {k: (v[0], None if v[1] is None else float(v[1])) for k, v in found.items()}, note
