"""The body Pub/Sub POSTs to a push endpoint, read strictly.

Pub/Sub sends ``{"message": {"data": base64, "attributes": {...}, "messageId": ...,
"publishTime": ..., "orderingKey": ...}, "subscription": ..., "deliveryAttempt": N}``
(``orderingKey`` for a message published with one); ``deliveryAttempt``
only when the subscription has a dead-letter policy, and never from the emulator. Anything
else is refused with :class:`~pubsub_jobs.errors.PushRefused` (400) before a job is looked
at; a well-formed envelope whose message is not a job goes on to ``perform``, which
dead-letters it (``invalid_message``) like the pull worker does.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pubsub_jobs.errors import PushRefused
from pubsub_jobs.message import parse_time

#: Largest request body read, in bytes: Pub/Sub's 10 MB limit (larger ones get 413).
MAX_BODY_BYTES = 10 * 1000 * 1000


@dataclass(frozen=True, slots=True)
class PushedMessage:
    """One pushed message, decoded."""

    subscription: str
    message_id: str
    data: bytes
    attributes: dict[str, str]
    #: Pub/Sub's count of deliveries, None when the envelope has none (see module doc).
    delivery_attempt: int | None
    #: When Pub/Sub took the message (None if the envelope has no valid one).
    publish_time: datetime | None = None
    #: The message's ordering key ("" without one).
    ordering_key: str = ""


def parse_envelope(body: bytes) -> PushedMessage:
    """The message of a push request's body; :class:`PushRefused` (400) saying what is wrong
    when it is not a Pub/Sub push envelope."""
    try:
        envelope = json.loads(body)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, or nested past the stack
        raise _bad("the body is not JSON") from None
    if not isinstance(envelope, dict):
        raise _bad("the body is not a JSON object")
    message = envelope.get("message")
    if not isinstance(message, dict):
        raise _bad("the body has no 'message' object")
    subscription = envelope.get("subscription")
    if not isinstance(subscription, str) or not subscription:
        raise _bad("the body has no 'subscription'")
    message_id = message.get("messageId", message.get("message_id"))
    if not isinstance(message_id, str) or not message_id:
        raise _bad("the message has no 'messageId'")
    publish_time = message.get("publishTime", message.get("publish_time"))
    return PushedMessage(
        subscription=subscription,
        message_id=message_id,
        data=_data(message.get("data")),
        attributes=_attributes(message.get("attributes")),
        delivery_attempt=_delivery_attempt(envelope.get("deliveryAttempt")),
        publish_time=_time(publish_time),
        ordering_key=_ordering_key(message.get("orderingKey", message.get("ordering_key"))),
    )


def _time(value: Any) -> datetime | None:
    """Pub/Sub's ``publishTime``; only scheduled (cron) messages need it, and they fall back
    to the time of delivery, so an unreadable one is no reason to refuse the message."""
    if not isinstance(value, str):
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _ordering_key(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad("the message's 'orderingKey' is not a string")
    return value


def _data(value: Any) -> bytes:
    if value is None:  # a message of attributes alone has no data
        return b""
    if not isinstance(value, str):
        raise _bad("the message's 'data' is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("the message's 'data' is not base64") from None


def _attributes(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad("the message's 'attributes' are not an object of strings")
    return dict(value)


def _delivery_attempt(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _bad("'deliveryAttempt' is not a positive integer")
    return value


def _bad(reason: str) -> PushRefused:
    return PushRefused(400, f"not a Pub/Sub push envelope: {reason}")


def check_length(content_length: int | None) -> None:
    """Refuse (413) a body declared larger than :data:`MAX_BODY_BYTES`."""
    if content_length is not None and content_length > MAX_BODY_BYTES:
        raise too_large()


def too_large() -> PushRefused:
    return PushRefused(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes")


def parse_content_length(value: str | None) -> int | None:
    """A Content-Length header's value; :class:`PushRefused` 400 when it is not a number."""
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise PushRefused(400, f"Content-Length {value!r} is not a number")
    return int(value)
