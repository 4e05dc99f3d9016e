"""Wire format version 1: how a job travels as one Pub/Sub message.

``data`` is a UTF-8 JSON object ``{"args": [...], "kwargs": {...}}``; the metadata travels in
string attributes (``job_name``, ``job_id``, ``queue_name``, ``enqueued_at``,
``wire_version``, optionally ``scheduled_at``). The JSON Schema in ``schema/wire-v1.json``
describes the same; :func:`schema` loads it.

A periodic job's message, which Cloud Scheduler publishes unchanged on every slot, carries
``schedule`` (its name) and may lack ``job_id`` and ``enqueued_at``: the worker derives them
from the schedule and the message's publish time before decoding it
(:func:`pubsub_jobs.cron.schedules.scheduled_delivery`).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any, NamedTuple

from pydantic_core import to_json

from pubsub_jobs._errors import InvalidMessage, MessageTooLarge

log = logging.getLogger(__name__)

WIRE_VERSION = "1"
REQUIRED_ATTRIBUTES = ("job_name", "job_id", "queue_name", "enqueued_at", "wire_version")

#: Pub/Sub's limits on one message.
MAX_DATA_BYTES = 10 * 1000 * 1000
MAX_ATTRIBUTES = 100
MAX_ATTRIBUTE_KEY_BYTES = 256
MAX_ATTRIBUTE_VALUE_BYTES = 1024
MAX_ORDERING_KEY_BYTES = 1024


_JSON_DECODER = json.JSONDecoder()
_RAW_DECODE = _JSON_DECODER.raw_decode
#: Attributes that :meth:`JobMessage.decode` reads into fields; the others stay attributes.
_FIELD_ATTRIBUTES = frozenset({*REQUIRED_ATTRIBUTES, "scheduled_at"})


def new_job_id() -> str:
    """A fresh job id: a UUID4 string, also valid in a Cloud Tasks task name.

    The same as ``str(uuid.uuid4())`` (random bits, version 4, RFC 4122 variant) at a third
    of its cost, which counts when thousands of jobs are enqueued at once.
    """
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_last_formatted: tuple[datetime | None, str] = (None, "")


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the wire format wants."""
    global _last_formatted
    last = _last_formatted
    if last[0] is moment:  # the jobs of one enqueue_many share their enqueued_at
        return last[1]
    if moment.tzinfo is None:
        raise ValueError("a naive datetime has no time zone: pass an aware datetime")
    text = moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
    _last_formatted = (moment, text)
    return text


#: An RFC 3339 date-time with its offset (``Z`` or ``+hh:mm``): the wire's times, as the
#: JSON Schema's ``pattern`` says too.
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time (``Z`` or a numeric offset); anything else is refused."""
    if not RFC3339.fullmatch(text):
        raise ValueError(f"time {text!r} is not RFC 3339 with an offset "
                         "(e.g. 2026-01-02T03:04:05Z or 2026-01-02T12:04:05+09:00)")
    fraction = text[19:].split("+")[0].split("-")[0].rstrip("Zz")
    if len(fraction) > 7:  # Python keeps microseconds: cut nanoseconds
        text = text[:19] + fraction[:7] + text[19 + len(fraction):]
    return datetime.fromisoformat(text.upper())


_last_parsed: tuple[str, datetime] = ("", datetime.min)


def _parse_time_cached(text: str) -> datetime:
    """:func:`parse_time`, remembering the last time parsed: the jobs of one ``enqueue_many``
    share their ``enqueued_at``, and a worker meets them one after another."""
    global _last_parsed
    last = _last_parsed
    if last[0] == text:
        return last[1]
    moment = parse_time(text)
    _last_parsed = (text, moment)
    return moment


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class JobMessage:
    """One job as it travels: encoded arguments plus metadata."""

    job_name: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    job_id: str = field(default_factory=new_job_id)
    enqueued_at: datetime = field(default_factory=utcnow)
    scheduled_at: datetime | None = None
    #: Further attributes carried along (e.g. ``traceparent``, dead-letter details).
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Further keys of the data object, kept as they are.
    extra_data: Mapping[str, Any] = field(default_factory=dict)
    #: A unique job's key and window in seconds (``using(unique_for=...)``); not on the wire:
    #: the adapter derives the job id from them (:mod:`pubsub_jobs.unique`).
    unique: tuple[str, float] | None = None
    #: The Pub/Sub ordering key it is published with (a field of the Pub/Sub message, not an
    #: attribute: the wire format is unchanged), or None.
    ordering_key: str | None = None

    def encode_data(self) -> bytes:
        body: dict[str, Any] = {"args": self.args, "kwargs": self.kwargs}
        if self.extra_data:
            body = {**self.extra_data, **body}
        # pydantic-core's encoder: the compact UTF-8 JSON of json.dumps(..., separators=(",",
        # ":"), ensure_ascii=False).encode() (floats may write e-7 for e-07) at a fifth of its cost
        return to_json(body)

    def encode_attributes(self) -> dict[str, str]:
        attributes = {
            **self.attributes,
            "job_name": self.job_name,
            "job_id": self.job_id,
            "queue_name": self.queue,
            "enqueued_at": format_time(self.enqueued_at),
            "wire_version": WIRE_VERSION,
        }
        if self.scheduled_at is not None:
            attributes["scheduled_at"] = format_time(self.scheduled_at)
        return attributes

    def encode(self) -> tuple[bytes, dict[str, str]]:
        """``(data, attributes)`` for Pub/Sub; refuses what exceeds Pub/Sub's limits."""
        data = self.encode_data()
        attributes = self.encode_attributes()
        check_limits(data, attributes, what=f"job {self.job_name!r}")
        return data, attributes

    def with_attributes(self, **attributes: str) -> JobMessage:
        return replace(self, attributes={**self.attributes, **attributes})

    @classmethod
    def decode(
        cls, data: bytes, attributes: Mapping[str, str], *, max_decoded_bytes: int | None = None
    ) -> JobMessage:
        """Rebuild a job from a message, or raise :class:`InvalidMessage` saying what is wrong.

        With ``max_decoded_bytes``, data whose decoded objects would take more memory than
        that (see :func:`decoded_size_estimate`) is refused before it is decoded.
        """
        return cls(*decode_fields(data, attributes, max_decoded_bytes))


class DecodedMessage(NamedTuple):
    """:class:`JobMessage`'s fields, as :func:`decode_fields` returns them: the worker's hot
    path reads them without building a frozen dataclass (which costs more than the JSON)."""

    job_name: str
    queue: str
    args: list[Any]
    kwargs: dict[str, Any]
    job_id: str
    enqueued_at: datetime
    scheduled_at: datetime | None
    attributes: Mapping[str, str]
    extra_data: dict[str, Any]


def decode_fields(
    data: bytes, attributes: Mapping[str, str], max_decoded_bytes: int | None = None
) -> DecodedMessage:
    """:meth:`JobMessage.decode`'s work: the fields of a job message, or
    :class:`InvalidMessage`; ``JobMessage(*decode_fields(...))`` is the job."""
    get = attributes.get
    try:  # subscripts: a protobuf map's get() is a Python method, twice as slow
        job_name, job_id, queue = (attributes["job_name"], attributes["job_id"],
                                   attributes["queue_name"])
        enqueued, version = attributes["enqueued_at"], attributes["wire_version"]
    except KeyError:
        job_name = ""
    if not (job_name and job_id and queue and enqueued and version):
        missing = [name for name in REQUIRED_ATTRIBUTES if not get(name)]
        raise InvalidMessage(f"missing or empty attribute(s): {', '.join(missing)}")
    if version != WIRE_VERSION:
        raise InvalidMessage(
            f"unknown wire_version {version!r}; this worker reads version {WIRE_VERSION}"
        )
    scheduled = get("scheduled_at")
    try:
        enqueued_at = _parse_time_cached(enqueued)
        scheduled_at = parse_time(scheduled) if scheduled else None
    except ValueError as exc:
        raise InvalidMessage(f"bad time attribute: {exc}") from None
    # the estimate is at most 121 bytes a byte: short data needs no counting
    if max_decoded_bytes is not None and len(data) * 121 > max_decoded_bytes:
        estimate = decoded_size_estimate(data)
        if estimate > max_decoded_bytes:
            raise InvalidMessage(
                f"data of {len(data)} bytes would take about {estimate // 2**20} MB once "
                f"decoded, over the limit of {max_decoded_bytes // 2**20} MB "
                "(PUBSUB_JOBS_MAX_DECODED_MESSAGE_MB); pass ids instead of many small "
                "objects, or raise the limit"
            )
    body = _decode_json(data)
    if type(body) is not dict:
        raise InvalidMessage(f"data is a JSON {type(body).__name__}, not an object")
    args, kwargs = body.pop("args", None), body.pop("kwargs", None)
    if type(args) is not list:
        raise InvalidMessage('data needs "args", a JSON array')
    if type(kwargs) is not dict:
        raise InvalidMessage('data needs "kwargs", a JSON object')
    return DecodedMessage(
        job_name, queue, args, kwargs, job_id, enqueued_at, scheduled_at,
        # attributes beyond the wire format's own, if any (most messages have none)
        {k: v for k, v in attributes.items() if k not in _FIELD_ATTRIBUTES}
        if len(attributes) > (5 if scheduled is None else 6) else {},
        body,
    )


def _decode_json(data: bytes) -> Any:
    """``data`` as JSON, or :class:`InvalidMessage` saying why not."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidMessage(f"data is not UTF-8: {exc}") from None
    try:
        try:  # the common case, without json.loads' whitespace handling around it
            body, end = _RAW_DECODE(text)
        except ValueError:
            return _JSON_DECODER.decode(text)  # leading whitespace, or the error to tell
        if end != len(text) and text[end:].strip(" \t\n\r"):
            return _JSON_DECODER.decode(text)  # raises "Extra data"
        return body
    except ValueError as exc:
        raise InvalidMessage(f"data is not JSON: {exc}") from None
    except RecursionError:  # json's C decoder raises it for deeply nested arrays/objects
        raise InvalidMessage("data is JSON nested too deeply to decode") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class EnqueuedJob:
    """What ``enqueue`` returns: the job's id, and where and when it will run.

    :meth:`cancel` deletes the job while it still waits (in Cloud Tasks, or in the in-memory
    adapter's delayed jobs), through the adapter that enqueued it.
    """

    job_id: str
    job_name: str
    queue: str
    message_id: str | None = None
    scheduled_at: datetime | None = None
    #: A unique job enqueued again within its window: nothing was enqueued, and ``job_id``
    #: is the first job's.
    duplicate: bool = False
    #: The enqueuing adapter's ``cancel(job_id, queue)``, set by that adapter for a job it
    #: holds back (not part of the value: left out of equality and repr).
    _canceller: Callable[[str, str], bool] | None = field(
        default=None, compare=False, repr=False
    )

    def cancel(self) -> bool:
        """Delete the job if it is still waiting to be published: True when it was cancelled
        and will not run; False when it had already left (it will run, or ran), with the
        reason logged at INFO. A job published straight to Pub/Sub (``message_id`` set) cannot
        be cancelled: False at once. Errors of the call itself are raised as
        :meth:`pubsub_jobs.adapter.Adapter.cancel` raises them."""
        if self._canceller is not None:
            return self._canceller(self.job_id, self.queue)
        if self.message_id is not None:
            log.info(
                "job %s of queue %r cannot be cancelled: it was published straight to Pub/Sub "
                "(message id %s), and a job already in Pub/Sub cannot be cancelled; it will "
                "run, or ran", self.job_id, self.queue, self.message_id,
            )
        else:
            log.info(
                "job %s of queue %r cannot be cancelled: the adapter that enqueued it held "
                "nothing back (it ran at once, or that adapter keeps no waiting jobs)",
                self.job_id, self.queue,
            )
        return False


def decoded_size_estimate(data: bytes) -> int:
    """A generous estimate of the memory JSON ``data`` takes once decoded: its own size plus
    an object per comma and a container per bracket (``[{},{},...]`` of 10 MB decodes to about
    240 MB; this says 560 MB). Counting bytes is fast; decoding first would be the harm."""
    containers = data.count(b"{") + data.count(b"[")
    return len(data) + data.count(b",") * 48 + containers * 120


def check_limits(data: bytes, attributes: Mapping[str, str], *, what: str) -> None:
    """Refuse a message Pub/Sub would refuse, with a sentence saying what to do instead."""
    if len(data) > MAX_DATA_BYTES:
        raise MessageTooLarge(
            f"{what} encodes to {len(data):,} bytes of arguments; a Pub/Sub message holds at "
            f"most {MAX_DATA_BYTES:,}. Store large payloads elsewhere (Cloud Storage, a "
            "database) and pass their key or URI instead."
        )
    if len(attributes) > MAX_ATTRIBUTES:
        raise MessageTooLarge(
            f"{what} has {len(attributes)} attributes; Pub/Sub allows {MAX_ATTRIBUTES}"
        )
    for key, value in attributes.items():
        # a character is at most 4 bytes of UTF-8: short strings need no encoding to check
        if len(key) * 4 > MAX_ATTRIBUTE_KEY_BYTES and len(key.encode()) > MAX_ATTRIBUTE_KEY_BYTES:
            raise MessageTooLarge(
                f"{what}: attribute name {key[:40]!r}... is longer than "
                f"{MAX_ATTRIBUTE_KEY_BYTES} bytes"
            )
        if (len(value) * 4 > MAX_ATTRIBUTE_VALUE_BYTES
                and len(value.encode()) > MAX_ATTRIBUTE_VALUE_BYTES):
            raise MessageTooLarge(
                f"{what}: attribute {key!r} is longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
                + (" (a shorter job name or queue name fits)"
                   if key in ("job_name", "queue_name") else "")
            )


def truncate_utf8(text: str, limit: int = MAX_ATTRIBUTE_VALUE_BYTES) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    return raw[: limit - 3].decode("utf-8", errors="ignore") + "..."


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of wire format v1 (``data`` decoded from JSON, ``attributes``)."""
    text = resources.files("pubsub_jobs").joinpath("schema/wire-v1.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded
