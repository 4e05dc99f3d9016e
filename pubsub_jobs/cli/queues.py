"""``pubsub-jobs queues``: each queue's topics, subscriptions, policies and backlog.

The work is done by :mod:`pubsub_jobs.admin.queue_status`, which scripts can use directly.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pubsub_jobs.cli._pubsub_errors import EXIT_FAILED, pubsub_errors
from pubsub_jobs.settings import get_settings

if TYPE_CHECKING:
    from pubsub_jobs.admin.queue_status import SubscriptionStatus


def register(sub: Any) -> None:
    """Add ``queues`` to the subcommands ``sub``."""
    p = sub.add_parser("queues", help="topics, subscriptions, policies and backlog of queues")
    p.add_argument("--queue", action="append", metavar="Q",
                   help="queue to show (default: every queue found in the project)")
    p.add_argument("--count-dead", action="store_true",
                   help="count each dead set by reading it (pull and release)")
    p.add_argument("--no-backlog", action="store_true", help="do not ask Cloud Monitoring")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_queues)


@pubsub_errors
def _cmd_queues(args: argparse.Namespace) -> int:
    from pubsub_jobs.admin.queue_status import queue_status  # with its clients: on use only

    statuses = queue_status(args.queue, count_dead=args.count_dead, backlog=not args.no_backlog)
    if args.json:
        json.dump([s.to_json() for s in statuses], sys.stdout, indent=2)
        print()
        return 0 if all(s.ok for s in statuses) else EXIT_FAILED
    if not statuses:
        settings = get_settings()
        print(f"no queues in project {settings.require_project()} (no topic named "
              f"{settings.prefix}*): create them with `pubsub-jobs bootstrap --queue Q`")
        return 0
    for status in statuses:
        print(f"queue {status.queue}")
        _row("topic", _exists(status.topic, status.topic_exists, status.queue))
        _row("dead-letter topic",
             _exists(status.dead_letter_topic, status.dead_letter_topic_exists, status.queue))
        for s in status.subscriptions:
            _row(f"{s.role} subscription", _exists(s.name, s.exists, status.queue))
            if not s.exists:
                continue
            _row("", _policies(s))
            for diff in s.drift:
                _row("", f"DIFFERS from the settings: {diff}")
            _row("", f"backlog: {_backlog(s, status.backlog_note)}")
        if status.dead_jobs is not None:
            _row("dead jobs", f"{status.dead_jobs} (counted by reading the dead set)")
    return 0 if all(s.ok for s in statuses) else EXIT_FAILED


def _policies(s: SubscriptionStatus) -> str:
    parts = [f"ack deadline {s.ack_deadline_seconds}s"]
    if s.message_retention is not None:
        parts.append(f"retention {_duration(s.message_retention)}")
    if s.dead_letter_topic:
        parts.append(f"dead-letter to {s.dead_letter_topic.rsplit('/', 1)[-1]} after "
                     f"{s.max_delivery_attempts} deliveries")
    if s.min_retry_backoff is not None:
        parts.append(f"retry backoff {_duration(s.min_retry_backoff)}.."
                     f"{_duration(s.max_retry_backoff)}")
    elif s.role == "worker":
        parts.append("no retry policy (immediate redelivery)")
    if s.exactly_once:
        parts.append("exactly-once delivery")
    if s.ordering:
        parts.append("ordering")
    if s.filter:
        parts.append(f"filter {s.filter!r}")
    return ", ".join(parts)


def _backlog(s: SubscriptionStatus, note: str | None) -> str:
    if s.backlog is None and s.oldest_unacked_seconds is None:
        return note or "unknown"
    text = f"{s.backlog if s.backlog is not None else '?'} message(s)"
    if s.oldest_unacked_seconds is not None:
        text += f", oldest unacked {_duration(timedelta(seconds=s.oldest_unacked_seconds))}"
    return text + " (Cloud Monitoring, a few minutes late)"


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "-"
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _exists(name: str, exists: bool, queue: str) -> str:
    return name if exists else f"{name}  MISSING: run `pubsub-jobs bootstrap --queue {queue}`"


def _row(label: str, value: str) -> None:
    print(f"  {label:<24}  {value}")
