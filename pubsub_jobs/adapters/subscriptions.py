"""The one check of a queue's subscription, before a worker pulls it or a push server
serves it.

A subscription without a dead-letter policy is refused: Pub/Sub then sends no delivery
attempt, so a failing job could not be counted and would be retried forever (pull) or
counted per instance only (push). A job allowed more attempts than the subscription's
``max_delivery_attempts``, or settings that disagree with it, are warnings: Pub/Sub would
move the message to the dead-letter topic before the job's last attempts. So is a
subscription whose message ordering or exactly-once delivery differs from the queue's
declaration in code (:func:`pubsub_jobs.queue`): Pub/Sub cannot change either in place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from google.api_core import exceptions as gexc

from pubsub_jobs.errors import ConfigurationError, describe
from pubsub_jobs.jobs import Registry
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class SubscriptionCheck:
    """What reading one queue's subscription found."""

    queue: str
    path: str
    #: The subscription, or None when it is missing or could not be read.
    subscription: Any = None
    missing: bool = False
    #: What is wrong but does not stop the queue from being served.
    warnings: list[str] = field(default_factory=list)

    @property
    def max_delivery_attempts(self) -> int | None:
        if self.subscription is None:
            return None
        return int(self.subscription.dead_letter_policy.max_delivery_attempts)

    @property
    def exactly_once(self) -> bool:
        """Whether Pub/Sub delivers this subscription exactly once: what the subscription
        says when it was read, else what the queue's declaration says (a worker acks such
        a queue's messages with Pub/Sub's answer, :mod:`pubsub_jobs.worker.acks`)."""
        if self.subscription is not None:
            return bool(self.subscription.enable_exactly_once_delivery)
        declared = declared_queue(self.queue)
        return declared is not None and declared.exactly_once


def check_subscription(
    subscriber: Any, queue: str, settings: Settings, registry: Registry, *, fix: str
) -> SubscriptionCheck:
    """Read ``queue``'s subscription with ``subscriber``; raise
    :class:`~pubsub_jobs.errors.ConfigurationError` for one without a dead-letter policy
    (``fix`` says what command repairs it). A subscription that cannot be read (the
    account may not be allowed to) is not checked."""
    path = settings.subscription_path(queue)
    check = SubscriptionCheck(queue, path)
    try:
        sub = subscriber.get_subscription(subscription=path)
    except gexc.NotFound:
        check.missing = True
        return check
    except Exception as exc:
        log.warning("could not read %s (%s); not checking its policies", path, describe(exc))
        return check
    if not sub.dead_letter_policy.dead_letter_topic:
        raise ConfigurationError(
            f"{path} has no dead-letter policy, so Pub/Sub sends no delivery attempt and "
            f"failing jobs could not be counted (a pull worker would retry them forever): "
            f"run {fix}"
        )
    check.subscription = sub
    limit = sub.dead_letter_policy.max_delivery_attempts
    configured = settings.queue_options(queue).max_delivery_attempts
    if configured != limit:
        check.warnings.append(
            f"{path} dead-letters after {limit} delivery attempts but the settings say "
            f"{configured}: run {fix} or change the settings")
    declared = declared_queue(queue)
    if declared is not None:
        for name, flag in (("enable_message_ordering", "ordered"),
                           ("enable_exactly_once_delivery", "exactly_once")):
            have, want = bool(getattr(sub, name)), getattr(declared, flag)
            if have != want:
                check.warnings.append(
                    f"{path} has {flag}={have} but queue {queue!r} is declared {flag}={want} "
                    f"({declared.origin}): Pub/Sub cannot change it in place; make a new "
                    "subscription (delete this one and run `pubsub-jobs bootstrap`, or use "
                    "another prefix)")
    for job in registry:
        if job.queue == queue and job.max_attempts and job.max_attempts > limit:
            check.warnings.append(
                f"job {job.name} allows {job.max_attempts} attempts but {path} dead-letters "
                f"after {limit}: raise the queue's max_delivery_attempts")
    return check
