"""The Cloud Tasks queues ``bootstrap`` makes: the delayed-jobs queue (``jobs-delayed``),
which holds delayed and unique jobs of every queue, and the ``jobs-Q-rate`` queue of each
queue declared with ``rate_limit=N``, dispatching at most N tasks a second. Terraform makes
the same from the same specs."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.protobuf import field_mask_pb2

from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)


def cloud_tasks_queue_spec(settings: Settings) -> Any:
    """The Cloud Tasks queue of delayed jobs, as Terraform makes it: a failed publish of a
    due job (Pub/Sub unavailable, a permission missing) is tried 100 times, 1 s to 5 min apart."""
    from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_queue_path, tasks_v2

    return tasks_v2.Queue(
        name=cloud_tasks_queue_path(settings),
        retry_config=tasks_v2.RetryConfig(
            max_attempts=100, min_backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=5)
        ),
    )


def rate_queue_spec(settings: Settings, queue: str, rate: float) -> Any:
    """The Cloud Tasks queue ``<prefix>Q-rate`` of a rate-limited queue: at most ``rate``
    dispatches a second, and the delayed-jobs queue's retry config."""
    from pubsub_jobs.adapters.cloud_tasks import tasks_queue_path, tasks_v2

    spec = cloud_tasks_queue_spec(settings)
    spec.name = tasks_queue_path(settings, queue)
    spec.rate_limits = tasks_v2.RateLimits(max_dispatches_per_second=rate)
    return spec


def ensure_tasks_queues(settings: Settings, rate_limited: Iterable[str] = ()
                        ) -> list[tuple[str, str]]:
    """Create the delayed-jobs queue and the ``-rate`` queue of each of ``rate_limited``
    that is declared with ``rate_limit``; an existing ``-rate`` queue whose rate differs is
    changed to the declared one in place (Cloud Tasks allows it). Returns each queue's name
    with what was done: ``created``, ``existing`` or ``updated``, the delayed queue first."""
    from pubsub_jobs.adapters.cloud_tasks import cloud_tasks_client

    client = cloud_tasks_client(settings)
    try:
        done = [_ensure(client, cloud_tasks_queue_spec(settings), None)]
        for name in rate_limited:
            declared = declared_queue(name)
            if declared is not None and declared.rate_limit is not None:
                spec = rate_queue_spec(settings, name, declared.rate_limit)
                done.append(_ensure(client, spec, declared.rate_limit))
    finally:
        client.transport.close()
    return done


def _ensure(client: Any, queue: Any, rate: float | None) -> tuple[str, str]:
    """Create ``queue``; an existing one with another rate than ``rate`` gets ``rate``."""
    name = str(queue.name)
    try:
        client.create_queue(parent=name.rsplit("/queues/", 1)[0], queue=queue)
        return name, "created"
    except gexc.AlreadyExists:
        pass
    if rate is not None:
        have = client.get_queue(name=name).rate_limits.max_dispatches_per_second
        if abs(have - rate) > 1e-9:
            client.update_queue(queue=queue, update_mask=field_mask_pb2.FieldMask(
                paths=["rate_limits.max_dispatches_per_second"]))
            log.warning("updated %s: max_dispatches_per_second %g -> %g (the declared "
                        "rate_limit)", name, have, rate)
            return name, "updated"
    return name, "existing"
