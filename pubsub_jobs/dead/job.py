"""One message of a queue's dead set, as every tool sees it: :class:`DeadJob`.

The command line, the Python API (:mod:`pubsub_jobs.dead.operations`), the dashboard, the
test helpers (:func:`pubsub_jobs.testing.pull_dead_letters`) and the in-memory adapter
(:meth:`~pubsub_jobs.adapters.memory.InMemoryAdapter.dead_jobs`) all read dead messages into
this one model, which is why this module belongs to the core layer: the in-memory adapter,
below the operations, uses it.
Decoding never fails: data that is not a job's JSON arguments (not UTF-8, not JSON, JSON
nested deeper than :data:`MAX_JSON_DEPTH`, not an object with ``args`` and ``kwargs``) leaves
``args``/``kwargs`` as ``None`` and says why in ``decode_error``, and the raw ``data`` and
``attributes`` are kept, so such a message can still be shown, retried and purged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import accumulate
from typing import TYPE_CHECKING, Any, Literal

from pubsub_jobs.message import MAX_ATTRIBUTES, format_time, parse_time, utcnow
from pubsub_jobs.outcome import DEAD_LETTER_ATTRIBUTES

if TYPE_CHECKING:  # only the annotation: the core loads no Google client library
    from google.cloud import pubsub_v1

__all__ = [
    "DERIVED_REASON",
    "MAX_JSON_DEPTH",
    "PUBSUB_DEAD_LETTER_PREFIX",
    "REASONS",
    "RETRY_ATTRIBUTES",
    "DeadJob",
    "DeadLetteredBy",
    "sort_dead",
]

#: The reason given to messages Pub/Sub forwarded under the subscription's dead-letter
#: policy; they carry none, so it is derived (``DeadJob.dead_lettered_by == "subscription"``).
DERIVED_REASON = "delivery_limit"

#: Every reason a dead job can have: the worker's dead-letter reasons (values of
#: :class:`~pubsub_jobs.outcome.Reason`), then :data:`DERIVED_REASON`.
REASONS = ("max_attempts", "not_retryable", "invalid_message", "unknown_job",
           "invalid_arguments", DERIVED_REASON)

#: Pub/Sub's own attributes on forwarded messages start with this.
PUBSUB_DEAD_LETTER_PREFIX = "CloudPubSubDeadLetter"

#: Attributes a retry adds to the republished message (the dead copy's message id, when,
#: and how many times this job was retried from the dead set).
RETRY_ATTRIBUTES = ("retried_from", "retried_at", "retried_count")

#: Data nested deeper than this is not decoded (``decode_error`` says so): Python's JSON
#: decoder and encoder recurse, and a message anyone can publish must not break the tools.
MAX_JSON_DEPTH = 200

DeadLetteredBy = Literal["worker", "subscription", "unknown"]

#: A JSON string (escapes included), to find the brackets that nest outside strings.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadJob:
    """One message of a queue's dead set, decoded as far as it goes.

    ``reason`` is the worker's ``dead_letter_reason``; for messages Pub/Sub forwarded under
    the subscription's dead-letter policy it is :data:`DERIVED_REASON` (see
    ``dead_lettered_by``). ``args``/``kwargs`` are ``None`` when the data is not a job's
    arguments, and ``decode_error`` then says why.
    """

    message_id: str
    queue: str
    job_id: str | None
    job_name: str | None
    reason: str
    dead_lettered_by: DeadLetteredBy
    error: str
    attempts: int | None
    dead_lettered_at: datetime | None
    args: list[Any] | None
    kwargs: dict[str, Any] | None
    data: bytes
    attributes: Mapping[str, str] = field(default_factory=dict)
    decode_error: str | None = None

    @property
    def id(self) -> str:
        """The job id, or the message id of a dead copy that has none (an invalid message)."""
        return self.job_id or self.message_id

    @property
    def reason_derived(self) -> bool:
        """True when the message carries no reason and :attr:`reason` was inferred."""
        return self.dead_lettered_by != "worker"

    @property
    def original_attributes(self) -> dict[str, str]:
        """The attributes of the message that died: without the dead-letter ones (ours and
        Pub/Sub's)."""
        return {
            k: v
            for k, v in self.attributes.items()
            if k not in DEAD_LETTER_ATTRIBUTES and not k.startswith(PUBSUB_DEAD_LETTER_PREFIX)
        }

    @property
    def original_key(self) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """What identifies the message that died: its data and original attributes.

        Dead copies with the same key are copies of one message (the worker's copy and
        Pub/Sub's forwarded one, or a copy made twice because a lease ran out): a retry
        republishes one of them and removes them all. Two jobs that merely share a
        ``job_id`` (different data or attributes) are never merged.
        """
        return self.data, tuple(sorted(self.original_attributes.items()))

    @classmethod
    def from_message(cls, queue: str, message: pubsub_v1.types.PubsubMessage) -> DeadJob:
        """A message pulled from the queue's dead-letter subscription."""
        return cls.from_fields(
            queue,
            message_id=message.message_id,
            data=bytes(message.data),
            attributes=dict(message.attributes),
            publish_time=_as_datetime(message.publish_time),
        )

    @classmethod
    def from_fields(
        cls,
        queue: str,
        *,
        message_id: str,
        data: bytes,
        attributes: Mapping[str, str],
        publish_time: datetime | None = None,
    ) -> DeadJob:
        """A dead copy given by its parts (the in-memory adapter keeps them so);
        ``publish_time`` stands in for ``dead_lettered_at`` when the attributes lack it."""
        attrs = dict(attributes)
        by: DeadLetteredBy
        if "dead_letter_reason" in attrs:
            by = "worker"
            reason = attrs["dead_letter_reason"]
            error = attrs.get("dead_letter_error", "")
            attempts = _as_int(attrs.get("delivery_attempt"))
            when = _as_time(attrs.get("dead_lettered_at")) or publish_time
        else:
            forwarded = any(k.startswith(PUBSUB_DEAD_LETTER_PREFIX) for k in attrs)
            by = "subscription" if forwarded else "unknown"
            reason = DERIVED_REASON if forwarded else "unknown"
            error = attrs.get("CloudPubSubDeadLetterSourceDeliveryErrorMessage", "")
            attempts = _as_int(attrs.get("CloudPubSubDeadLetterSourceDeliveryCount"))
            when = publish_time
        args, kwargs, decode_error = _decode_arguments(data)
        return cls(
            message_id=message_id,
            queue=queue,
            job_id=attrs.get("job_id") or None,
            job_name=attrs.get("job_name") or None,
            reason=reason,
            dead_lettered_by=by,
            error=error,
            attempts=attempts,
            dead_lettered_at=when,
            args=args,
            kwargs=kwargs,
            data=data,
            attributes=attrs,
            decode_error=decode_error,
        )

    def matches(self, *, job_name: str | None = None, reason: str | None = None) -> bool:
        return (job_name is None or self.job_name == job_name) and (
            reason is None or self.reason == reason
        )

    def retry_attributes(self) -> dict[str, str]:
        """The attributes a retry publishes: the original ones, without any dead-letter
        attribute (ours or Pub/Sub's), plus where the retry came from (left out when they
        would take the message past Pub/Sub's 100 attributes)."""
        attrs = {k: v for k, v in self.original_attributes.items() if k not in RETRY_ATTRIBUTES}
        if len(attrs) + len(RETRY_ATTRIBUTES) > MAX_ATTRIBUTES:
            return attrs
        attrs["retried_from"] = self.message_id
        attrs["retried_at"] = format_time(utcnow())
        attrs["retried_count"] = str((_as_int(self.attributes.get("retried_count")) or 0) + 1)
        return attrs

    def json(self) -> Any:
        """The data parsed as JSON (for tests); raises ``ValueError`` when it is not JSON."""
        return json.loads(self.data)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``--json`` and web pages); data as text when it is UTF-8."""
        try:
            data: str | None = self.data.decode("utf-8")
        except UnicodeDecodeError:
            data = None
        return {
            "job_id": self.job_id,
            "job_name": self.job_name,
            "queue": self.queue,
            "reason": self.reason,
            "reason_derived": self.reason_derived,
            "dead_lettered_by": self.dead_lettered_by,
            "error": self.error,
            "attempts": self.attempts,
            "dead_lettered_at": (
                format_time(self.dead_lettered_at) if self.dead_lettered_at else None
            ),
            "message_id": self.message_id,
            "args": self.args,
            "kwargs": self.kwargs,
            "decode_error": self.decode_error,
            "data": data,
            "attributes": dict(sorted(self.attributes.items())),
        }


def sort_dead(jobs: Iterable[DeadJob]) -> list[DeadJob]:
    """Oldest dead-lettered first (message id breaks ties)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(jobs, key=lambda j: (j.dead_lettered_at or oldest, j.message_id))


def _decode_arguments(
    data: bytes,
) -> tuple[list[Any] | None, dict[str, Any] | None, str | None]:
    """``(args, kwargs, None)`` of a job's data, or what could be decoded and why not all."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, None, "data is not UTF-8"
    if _too_deep(text):
        return None, None, f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
    try:
        body = json.loads(text)
    except RecursionError:
        return None, None, "JSON nested too deeply to decode"
    except ValueError as exc:
        return None, None, f"data is not JSON ({exc})"
    if not isinstance(body, dict):
        return None, None, f"data is a JSON {type(body).__name__}, not an object"
    args, kwargs = body.get("args"), body.get("kwargs")
    args = args if isinstance(args, list) else None
    kwargs = kwargs if isinstance(kwargs, dict) else None
    missing = [n for n, v in (('"args" array', args), ('"kwargs" object', kwargs)) if v is None]
    return args, kwargs, f"data has no {' and no '.join(missing)}" if missing else None


def _too_deep(text: str) -> bool:
    """Whether the JSON ``text`` nests arrays and objects deeper than :data:`MAX_JSON_DEPTH`,
    found without recursion (brackets inside strings do not count)."""
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False  # too few brackets to nest that deep: no scan needed
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(_BRACKET_STEP[c] for c in brackets), default=0) > MAX_JSON_DEPTH


def _as_int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def _as_time(text: str | None) -> datetime | None:
    """The time in UTC, or None when ``text`` is not one (or not one UTC can hold)."""
    try:
        return parse_time(text).astimezone(UTC) if text else None
    except (ValueError, OverflowError):
        return None


def _as_datetime(value: Any) -> datetime | None:
    if not isinstance(value, datetime) or value.timestamp() <= 0:
        return None
    return datetime.fromtimestamp(value.timestamp(), tz=UTC)
