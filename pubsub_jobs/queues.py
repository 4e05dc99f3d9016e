"""Queues declared in code, beside the jobs, and the options of a queue's subscriptions.

``queue("billing", ordered=True, max_delivery_attempts=10)`` declares what a queue is once,
in the application's modules; every command given them (``--app``, the worker's modules)
reads the declarations: ``bootstrap`` and Terraform make the subscriptions from them, the
worker and the push server check them. A declaration is validated when it is made, so a
queue Pub/Sub or Cloud Tasks would refuse fails at import, with a sentence.

The declaration is the application's truth: it wins over the settings
(``PUBSUB_JOBS_QUEUE_DEFAULTS``, ``PUBSUB_JOBS_QUEUES``) for every value it gives, and a
``PUBSUB_JOBS_QUEUES`` entry that gives another value for the same option is logged as a
warning naming both (:meth:`pubsub_jobs.settings.Settings.queue_options` merges them).
Options a declaration leaves out come from the settings as before.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from types import FrameType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pubsub_jobs.errors import ConfigurationError
from pubsub_jobs.message import MAX_ORDERING_KEY_BYTES

log = logging.getLogger(__name__)

#: Cloud Tasks dispatches at most 500 tasks a second from one queue.
MAX_RATE_LIMIT = 500
#: A queue name ends Pub/Sub names (``jobs-Q``, ``jobs-Q-worker``): Pub/Sub's characters.
_NAME = re.compile(r"[A-Za-z0-9._~+%-]{1,200}")
#: A rate-limited queue also names a Cloud Tasks queue (``jobs-Q-rate``): letters, digits, -.
_TASKS_NAME = re.compile(r"[A-Za-z0-9-]{1,80}")
#: The heartbeats' topic is ``<prefix>workers``.
_RESERVED = {"workers"}


class QueueOptions(BaseModel):
    """How one queue's subscriptions are set up; the same values feed bootstrap and Terraform."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_delivery_attempts: int = Field(5, ge=5, le=100)
    min_retry_backoff: timedelta = timedelta(seconds=10)
    max_retry_backoff: timedelta = timedelta(seconds=600)
    ack_deadline_seconds: int = Field(60, ge=10, le=600)
    message_retention: timedelta = timedelta(days=7)
    dead_letter_retention: timedelta = timedelta(days=7)

    @field_validator("min_retry_backoff", "max_retry_backoff")
    @classmethod
    def _backoff_range(cls, value: timedelta) -> timedelta:
        if not timedelta(0) <= value <= timedelta(seconds=600):
            raise ValueError("a retry backoff is between 0 and 600 seconds (Pub/Sub's limits)")
        return value

    @field_validator("message_retention", "dead_letter_retention")
    @classmethod
    def _retention_range(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=10) <= value <= timedelta(days=7):
            raise ValueError("a subscription keeps messages between 10 minutes and 7 days")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Queue:
    """One queue as declared by :func:`queue`.

    ``policies`` holds the subscription options the declaration gave (the others come from
    the settings): ``policies.model_fields_set`` says which.
    """

    name: str
    ordered: bool = False
    exactly_once: bool = False
    rate_limit: float | None = None
    policies: QueueOptions = field(default_factory=QueueOptions)
    #: Where it was declared: ``queue() at app.py:3``.
    origin: str = field(default="queue()", compare=False)

    def declared_policies(self) -> dict[str, Any]:
        """The subscription options this declaration gives, by QueueOptions' field names."""
        return {name: getattr(self.policies, name) for name in sorted(
            self.policies.model_fields_set)}

    def describe(self) -> str:
        """``ordered, exactly_once, rate_limit 20/s``, or ``no delivery feature``."""
        parts = [name for name in ("ordered", "exactly_once") if getattr(self, name)]
        if self.rate_limit is not None:
            parts.append(f"rate_limit {self.rate_limit:g}/s")
        return ", ".join(parts) or "no delivery feature"


class QueueRegistry:
    """Declared queues by name (:data:`declared_queues` is the application's)."""

    def __init__(self) -> None:
        self._queues: dict[str, Queue] = {}
        self._lock = threading.Lock()

    def add(self, declared: Queue) -> None:
        """Add a declaration; another one of a declared queue is refused (the same one again,
        by a module imported twice, is not)."""
        with self._lock:
            existing = self._queues.get(declared.name)
            if existing is not None and existing != declared:
                raise ConfigurationError(
                    f"queue {declared.name!r} is declared twice, differently: "
                    f"{_shown(existing)} ({existing.origin}) and {_shown(declared)} "
                    f"({declared.origin}); declare it once, beside its jobs"
                )
            self._queues[declared.name] = declared

    def get(self, name: str) -> Queue | None:
        return self._queues.get(name)

    def remove(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._queues

    def __iter__(self) -> Iterator[Queue]:
        return iter(sorted(self._queues.values(), key=lambda q: q.name))

    def __len__(self) -> int:
        return len(self._queues)


#: The queues the application's modules declared with :func:`queue`.
declared_queues = QueueRegistry()


def declared_queue(name: str) -> Queue | None:
    """The declaration of queue ``name`` in the imported modules, or None."""
    return declared_queues.get(name)


def queue(
    name: str,
    *,
    ordered: bool = False,
    exactly_once: bool = False,
    rate_limit: float | None = None,
    max_delivery_attempts: int | None = None,
    min_backoff: timedelta | float | None = None,
    max_backoff: timedelta | float | None = None,
    ack_deadline_seconds: int | None = None,
    message_retention: timedelta | float | None = None,
    dead_letter_retention: timedelta | float | None = None,
    min_retry_backoff: timedelta | float | None = None,
    max_retry_backoff: timedelta | float | None = None,
    registry: QueueRegistry | None = None,
) -> Queue:
    """Declare queue ``name``: how its jobs are delivered, and its subscription's policies.

    - ``ordered``: its worker subscription delivers the messages of one ordering key in
      order (Pub/Sub message ordering).
    - ``exactly_once``: its worker subscription has Pub/Sub exactly-once delivery.
    - ``rate_limit``: at most this many jobs a second reach the workers (above 0, at most
      Cloud Tasks' 500).
    - ``max_delivery_attempts``, ``min_backoff``, ``max_backoff`` (or their settings' names
      ``min_retry_backoff``, ``max_retry_backoff``), ``ack_deadline_seconds``,
      ``message_retention``, ``dead_letter_retention``: as
      :class:`QueueOptions`; durations as ``timedelta`` or seconds. They win over the
      settings; what is left out comes from the settings.

    Returns the frozen :class:`Queue`; raises
    :class:`~pubsub_jobs.errors.ConfigurationError` with a sentence for a value Pub/Sub or
    Cloud Tasks would refuse, or for a queue declared twice differently.
    """
    declared = build_queue(
        name, ordered=ordered, exactly_once=exactly_once, rate_limit=rate_limit,
        policies={
            "max_delivery_attempts": max_delivery_attempts,
            "min_retry_backoff": _either(name, "min_backoff", min_backoff,
                                         "min_retry_backoff", min_retry_backoff),
            "max_retry_backoff": _either(name, "max_backoff", max_backoff,
                                         "max_retry_backoff", max_retry_backoff),
            "ack_deadline_seconds": ack_deadline_seconds,
            "message_retention": message_retention,
            "dead_letter_retention": dead_letter_retention,
        },
        origin=call_site(sys._getframe(1), "queue()"),
    )
    (declared_queues if registry is None else registry).add(declared)
    return declared


def build_queue(
    name: str,
    *,
    ordered: bool = False,
    exactly_once: bool = False,
    rate_limit: float | None = None,
    policies: dict[str, Any] | None = None,
    origin: str = "queue()",
) -> Queue:
    """A validated :class:`Queue`, not yet registered (:func:`queue` registers it);
    ``policies`` by QueueOptions' field names, None for not given."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"queue name {name!r} is not 1 to 200 letters, digits or - _ . ~ + % (it ends "
            "Pub/Sub names: jobs-NAME, jobs-NAME-worker)")
    if name in _RESERVED:
        raise ConfigurationError(f"queue name {name!r} is taken: the topic <prefix>{name} "
                                 "carries the workers' heartbeats; choose another name")
    for flag, value in (("ordered", ordered), ("exactly_once", exactly_once)):
        if not isinstance(value, bool):
            raise ConfigurationError(f"queue {name!r}: {flag} is True or False, not {value!r}")
    if rate_limit is not None:
        if isinstance(rate_limit, bool) or not isinstance(rate_limit, int | float):
            raise ConfigurationError(f"queue {name!r}: rate_limit is a number of jobs a "
                                     f"second, not {rate_limit!r}")
        if not 0 < rate_limit <= MAX_RATE_LIMIT:
            raise ConfigurationError(
                f"queue {name!r}: rate_limit={rate_limit!r} is out of range: above 0 and at "
                f"most {MAX_RATE_LIMIT} jobs a second (Cloud Tasks' maximum for a queue)")
        if not _TASKS_NAME.fullmatch(name):
            raise ConfigurationError(
                f"queue {name!r}: a rate-limited queue's name also names its Cloud Tasks "
                "queue (<prefix>NAME-rate), which holds only letters, digits and hyphens "
                "(at most 80 here); rename the queue or drop rate_limit")
    given = {key: value for key, value in (policies or {}).items() if value is not None}
    try:
        options = QueueOptions(**given)
    except ValidationError as exc:
        raise ConfigurationError(f"queue {name!r}: {_explain(exc)}") from None
    if options.min_retry_backoff > options.max_retry_backoff and (
            {"min_retry_backoff", "max_retry_backoff"} & options.model_fields_set):
        raise ConfigurationError(
            f"queue {name!r}: min_backoff ({options.min_retry_backoff.total_seconds():g} s) "
            f"is above max_backoff ({options.max_retry_backoff.total_seconds():g} s)")
    return Queue(name=name, ordered=ordered, exactly_once=exactly_once,
                 rate_limit=None if rate_limit is None else float(rate_limit),
                 policies=options, origin=origin)


def check_ordering_key(key: object) -> str:
    """``key`` if Pub/Sub takes it as an ordering key (a non-empty string of at most
    :data:`MAX_ORDERING_KEY_BYTES` UTF-8 bytes); else a
    :class:`~pubsub_jobs.errors.ConfigurationError` saying what to give instead."""
    if not isinstance(key, str) or not key:
        raise ConfigurationError(
            f"ordering_key is a non-empty string (a customer id, an account number), not "
            f"{key!r}")
    if len(key) * 4 > MAX_ORDERING_KEY_BYTES and len(key.encode()) > MAX_ORDERING_KEY_BYTES:
        raise ConfigurationError(
            f"ordering_key {key[:40]!r}... is {len(key.encode()):,} bytes of UTF-8; Pub/Sub "
            f"takes at most {MAX_ORDERING_KEY_BYTES:,}: use a shorter key (an id, or a hash "
            "of the long one)")
    return key


def check_ordered(queue: str, ordering_key: str | None, what: str) -> None:
    """Refuse an ordering key for a queue not declared ``ordered=True`` in the imported
    modules (its subscription would deliver the jobs in any order): the one check of every
    adapter's enqueue. ``what`` names the job (``job 'app.charge'``)."""
    if ordering_key is None:
        return
    declared = declared_queue(queue)
    if declared is not None and declared.ordered:
        return
    why = ("is declared without ordered=True" if declared is not None
           else "is not declared in the modules this process imported")
    raise ConfigurationError(
        f"{what}: ordering_key={ordering_key[:40]!r} needs an ordered queue, but queue "
        f"{queue!r} {why}: declare it with queue({queue!r}, ordered=True) beside its jobs, "
        "and import that module in every process that enqueues to it (and run bootstrap or "
        "Terraform, which make its subscription ordered); nothing was enqueued")


def merged_options(queue: str, entry: QueueOptions | None, defaults: QueueOptions,
                   entry_source: Callable[[], str]) -> QueueOptions:
    """A queue's options: what its declaration gives, over its settings' ``entry`` (else
    the settings' ``defaults``). Where ``entry`` gives another value for a declared option,
    a warning names both (once), saying the entry came from ``entry_source()``."""
    base = entry if entry is not None else defaults
    declared = declared_queue(queue)
    if declared is None:
        return base
    given = declared.declared_policies()
    if entry is not None:
        _warn_of_conflicts(queue, entry, given, declared.origin, entry_source)
    return base.model_copy(update=given) if given else base


def option_sources(queue: str, entry: QueueOptions | None, defaults: QueueOptions,
                   entry_source: str, defaults_source: str) -> dict[str, str]:
    """Where each option of :func:`merged_options` comes from: the declaration's origin,
    ``entry_source``, ``defaults_source``, or ``the default``."""
    declared = declared_queue(queue)
    given = declared.declared_policies() if declared is not None else {}
    sources = {}
    for name in QueueOptions.model_fields:
        if declared is not None and name in given:
            sources[name] = declared.origin
        elif entry is not None:
            sources[name] = entry_source if name in entry.model_fields_set else "the default"
        elif name in defaults.model_fields_set:
            sources[name] = defaults_source
        else:
            sources[name] = "the default"
    return sources


def queue_description(queue: str, options: QueueOptions, sources: dict[str, str]) -> str:
    """``queue 'billing': ordered (from queue() at app.py:3); max_delivery_attempts 10
    (from queue() at app.py:3), ...``: a queue's features and options, each with its source."""
    declared = declared_queue(queue)
    features = (f"{declared.describe()} (from {declared.origin})" if declared is not None
                else "not declared in code (no queue() in the modules given)")
    values = ", ".join(f"{name} {_option_text(getattr(options, name))} (from {sources[name]})"
                       for name in QueueOptions.model_fields)
    return f"queue {queue!r}: {features}; {values}"


#: The contradictions between settings and declarations already logged.
_conflicts_told: set[tuple[str, str, str, str]] = set()


def _warn_of_conflicts(queue: str, entry: QueueOptions, given: dict[str, Any], origin: str,
                       entry_source: Callable[[], str]) -> None:
    for name, value in given.items():
        if name in entry.model_fields_set and getattr(entry, name) != value:
            other = getattr(entry, name)
            key = (queue, name, repr(value), repr(other))
            if key in _conflicts_told:
                continue
            _conflicts_told.add(key)
            log.warning("queue %r: %s is %s in %s but %s in %s; the declaration in code wins "
                        "(remove it from the setting, or change the declaration)", queue,
                        name, _option_text(value), origin, _option_text(other),
                        entry_source())


def _option_text(value: Any) -> str:
    return f"{value.total_seconds():g}s" if isinstance(value, timedelta) else repr(value)


def call_site(frame: FrameType, what: str) -> str:
    """``queue() at app.py:4``: the file (relative to the working directory, when under it)
    and line of the call ``frame`` is in."""
    path = os.path.abspath(frame.f_code.co_filename)
    try:
        shown = os.path.relpath(path)
    except ValueError:  # another drive
        shown = path
    return f"{what} at {shown if not shown.startswith('..') else path}:{frame.f_lineno}"


def _either(queue_name: str, name: str, value: Any, other: str, other_value: Any) -> Any:
    if value is not None and other_value is not None:
        raise ConfigurationError(f"queue {queue_name!r}: give {name} or {other} (the same "
                                 "option under its settings' name), not both")
    return other_value if value is None else value


def _explain(exc: ValidationError) -> str:
    clauses = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        shown = {"min_retry_backoff": "min_backoff",
                 "max_retry_backoff": "max_backoff"}.get(where, where)
        msg = error["msg"].removeprefix("Value error, ")
        clauses.append(f"{shown}={error['input']!r}: {msg}")
    return "; ".join(clauses)


def _shown(declared: Queue) -> str:
    args = [repr(declared.name)]
    args += [f"{flag}=True" for flag in ("ordered", "exactly_once") if getattr(declared, flag)]
    if declared.rate_limit is not None:
        args.append(f"rate_limit={declared.rate_limit:g}")
    args += [f"{key}={value!r}" for key, value in declared.declared_policies().items()]
    return f"queue({', '.join(args)})"
