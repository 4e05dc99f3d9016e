"""Bulk publishing of jobs with ordering keys, for the Pub/Sub adapter
(:class:`~pubsub_jobs.adapters.pubsub.PubSubAdapter`): each key's jobs reach Pub/Sub in the
order given, and never out of it after a failure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from google.cloud import pubsub_v1
from google.pubsub_v1.types import PubsubMessage

from pubsub_jobs.adapter import result_for
from pubsub_jobs.adapters import _retry
from pubsub_jobs.errors import EnqueueError, describe
from pubsub_jobs.message import EnqueuedJob, JobMessage
from pubsub_jobs.settings import Settings

#: A message ready to send: the job, its topic, its data and attributes.
Item = tuple[JobMessage, str, bytes, dict[str, str]]

_PubsubMessagePb: Any = PubsubMessage.pb()


class Publisher(Protocol):
    """What is used of the Pub/Sub adapter."""

    batch_settings: pubsub_v1.types.BatchSettings

    @property
    def settings(self) -> Settings: ...

    def publish_request(self, topic_path: str, messages: Sequence[Any]) -> list[str]: ...


def publish_ordered(adapter: Publisher, items: list[Item], done: dict[str, EnqueuedJob],
                    errors: dict[str, BaseException]) -> None:
    """Publish jobs with ordering keys so that each key's jobs reach Pub/Sub in the
    order given: the requests of a topic go one after another (each retried under the
    policy before the next is sent), never side by side, and once a request failed, the
    later jobs of its keys are not sent at all (reported failed, saying why): a partial
    retry would reorder them."""
    by_topic: dict[str, list[Item]] = {}
    for item in items:
        by_topic.setdefault(item[1], []).append(item)
    max_messages = adapter.batch_settings.max_messages
    max_bytes = adapter.batch_settings.max_bytes
    for topic, topic_items in by_topic.items():
        failed_keys: dict[str, BaseException] = {}
        batch: list[tuple[Item, Any]] = []
        size = 0
        for item in topic_items:
            key = item[0].ordering_key or ""
            pb = _PubsubMessagePb(data=item[2], attributes=item[3], ordering_key=key)
            item_size = pb.ByteSize() + 8
            if batch and (size + item_size > max_bytes or len(batch) >= max_messages):
                _send_ordered(adapter, topic, batch, done, errors, failed_keys)
                batch, size = [], 0
            if key in failed_keys:
                errors[item[0].job_id] = _not_sent(key, failed_keys[key])
                continue
            batch.append((item, pb))
            size += item_size
        if batch:
            _send_ordered(adapter, topic, batch, done, errors, failed_keys)

def _send_ordered(adapter: Publisher, topic: str, batch: list[tuple[Item, Any]],
                  done: dict[str, EnqueuedJob], errors: dict[str, BaseException],
                  failed_keys: dict[str, BaseException]) -> None:
    """One request of :func:`publish_ordered`; its keys join ``failed_keys`` if it
    fails."""
    pbs = [pb for _, pb in batch]
    try:
        ids = _retry.call(lambda: adapter.publish_request(topic, pbs),
                          attempts=adapter.settings.publish_attempts,
                          what=f"ordered publish of {len(pbs)} jobs")
    except Exception as exc:
        for item, _ in batch:
            errors[item[0].job_id] = exc
            failed_keys.setdefault(item[0].ordering_key or "", exc)
        return
    for (item, _), message_id in zip(batch, ids, strict=True):
        done[item[0].job_id] = result_for(item[0], message_id)


def _not_sent(key: str, cause: BaseException) -> EnqueueError:
    return EnqueueError(
        f"not sent: an earlier job of ordering key {key[:40]!r} was not published "
        f"({describe(cause)}), and this one would have run before it; enqueue the failed "
        "jobs of the key again, in order")
