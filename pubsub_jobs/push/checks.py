"""What ``pubsub-jobs push-server`` checks before it serves, as the pull worker does.

Each queue's subscription is read (when the server's account may: on Cloud Run it often
may not, and then nothing is checked). A subscription without a dead-letter policy is
refused: Pub/Sub would send no ``deliveryAttempt`` and a failing job could only be counted
per instance. Everything else that would make pushes fail or never come is a warning: a
pull subscription, an endpoint that is not ``/push/QUEUE``, a token this server would
refuse, an ack deadline under :data:`~pubsub_jobs.push.handler.PUSH_ACK_DEADLINE`.
A queue declared ``exactly_once`` never gets this far: the endpoint refuses to serve it
when it is built (:class:`~pubsub_jobs.push.handler.PushHandler`), since Pub/Sub offers
exactly-once delivery on pull subscriptions only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from google.cloud import pubsub_v1

from pubsub_jobs.adapters.clients import subscriber_client
from pubsub_jobs.adapters.subscriptions import check_subscription
from pubsub_jobs.jobs import Registry, default_registry
from pubsub_jobs.push.handler import PUSH_ACK_DEADLINE, PUSH_PREFIX
from pubsub_jobs.settings import Settings, get_settings

log = logging.getLogger(__name__)


def check_subscriptions(
    queues: Sequence[str], settings: Settings | None = None, registry: Registry | None = None
) -> list[str]:
    """Read each queue's subscription; raise :class:`ConfigurationError` for one without a
    dead-letter policy, log the rest. Returns the warnings."""
    settings = settings or get_settings()
    registry = registry if registry is not None else default_registry
    warnings: list[str] = []
    if settings.push_auth == "oidc" and settings.pubsub_emulator_host:
        warnings.append("the emulator sends no token, so this server (PUBSUB_JOBS_PUSH_AUTH="
                        "oidc) refuses its pushes: set PUBSUB_JOBS_PUSH_AUTH=none against it")
    subscriber = subscriber_client(settings)
    try:
        for queue in queues:
            warnings += _check(subscriber, queue, settings, registry)
    finally:
        subscriber.close()
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def _check(subscriber: pubsub_v1.SubscriberClient, queue: str, settings: Settings,
           registry: Registry) -> list[str]:
    fix = f"`pubsub-jobs bootstrap --queue {queue} --push-endpoint URL --update` (or Terraform)"
    check = check_subscription(subscriber, queue, settings, registry, fix=fix)
    if check.missing:
        return [f"{check.path} does not exist, so nothing is pushed here: run {fix}"]
    sub = check.subscription
    if sub is None:  # could not be read
        return []
    path = check.path
    endpoint = sub.push_config.push_endpoint
    if not endpoint:
        return [f"{path} is a pull subscription: Pub/Sub pushes nothing here; run {fix}"]
    found: list[str] = []
    if not urlsplit(endpoint).path.endswith(f"{PUSH_PREFIX}{queue}"):
        found.append(f"{path} pushes to {endpoint}, not to .../push/{queue}: run {fix}")
    if sub.ack_deadline_seconds < PUSH_ACK_DEADLINE:
        found.append(f"{path} waits {sub.ack_deadline_seconds} s for an answer: jobs longer "
                     f"than that run twice; run {fix} (push subscriptions wait "
                     f"{PUSH_ACK_DEADLINE} s)")
    token = sub.push_config.oidc_token
    if settings.push_auth == "oidc" and not settings.pubsub_emulator_host:
        if not token.service_account_email:
            found.append(f"{path} sends no OIDC token, so every push is refused (401): run {fix}")
        elif token.service_account_email.lower() != (settings.push_service_account or "").lower():
            found.append(f"{path} sends tokens of {token.service_account_email}, but "
                         f"PUBSUB_JOBS_PUSH_SERVICE_ACCOUNT is {settings.push_service_account}: "
                         "every push is refused (403)")
        elif (token.audience or endpoint) != settings.push_audience:
            found.append(f"{path} sends tokens for audience {token.audience or endpoint}, but "
                         f"PUBSUB_JOBS_PUSH_AUDIENCE is {settings.push_audience}: every push "
                         "is refused (403)")
    return found + check.warnings
