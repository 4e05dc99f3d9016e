"""``pubsub-jobs dead ...`` and ``pubsub-jobs queues``: operating queues from the command line.

:func:`register` adds the commands to the ``pubsub-jobs`` parser; the work is done by
:mod:`pubsub_jobs.dead` and :mod:`pubsub_jobs.queues_status`, which scripts can use directly.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO

from google.api_core import exceptions as gexc

from pubsub_jobs import dead
from pubsub_jobs.dead import DeadJob
from pubsub_jobs.errors import DeadJobNotFound, describe
from pubsub_jobs.settings import get_settings

if TYPE_CHECKING:
    from pubsub_jobs.queues_status import SubscriptionStatus

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130

Command = Callable[[argparse.Namespace], int]


def register(sub: Any) -> None:
    """Add ``dead`` (list, show, retry, purge) and ``queues`` to the subcommands ``sub``."""
    p = sub.add_parser("dead", help="list, show, retry or purge dead-lettered jobs")
    actions = p.add_subparsers(dest="dead_action", required=True, metavar="ACTION")

    a = actions.add_parser("list", help="dead jobs of a queue (nothing is removed)")
    a.add_argument("queue")
    _add_filters(a)
    a.add_argument("--limit", type=int, metavar="N", help="show at most N")
    a.add_argument("--json", action="store_true", help="a JSON array, for scripts")
    a.set_defaults(func=_cmd_list)

    a = actions.add_parser("show", help="one dead job in full")
    a.add_argument("queue")
    a.add_argument("job_id", metavar="JOB_ID", help="job id (or message id)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=_cmd_show)

    a = actions.add_parser(
        "retry", help="republish dead jobs to their queue; each dead copy is removed only "
        "once Pub/Sub confirmed its republish")
    a.add_argument("queue")
    a.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    a.add_argument("--all", action="store_true", help="every dead job (that the filters let by)")
    _add_filters(a)
    a.add_argument("--batch-size", type=int, default=100, metavar="N",
                   help="jobs published, confirmed and removed together")
    a.set_defaults(func=_cmd_retry)

    a = actions.add_parser("purge", help="remove dead jobs for good")
    a.add_argument("queue")
    a.add_argument("job_ids", nargs="*", metavar="JOB_ID")
    a.add_argument("--all", action="store_true", help="every dead job (that the filters let by)")
    _add_filters(a)
    a.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    a.set_defaults(func=_cmd_purge)

    p = sub.add_parser("queues", help="topics, subscriptions, policies and backlog of queues")
    p.add_argument("--queue", action="append", metavar="Q",
                   help="queue to show (default: every queue found in the project)")
    p.add_argument("--count-dead", action="store_true",
                   help="count each dead set by reading it (pull and release)")
    p.add_argument("--no-backlog", action="store_true", help="do not ask Cloud Monitoring")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_queues)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-name", metavar="NAME", help="only jobs of this name")
    parser.add_argument("--reason", metavar="REASON",
                        help="only this reason (max_attempts, not_retryable, invalid_message, "
                        f"unknown_job, invalid_arguments, {dead.DERIVED_REASON})")


def _pubsub_errors(command: Command) -> Command:
    """Turn a missing subscription or topic into a sentence and exit code 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except gexc.NotFound as exc:
            queue = getattr(args, "queue", None)
            hint = f": run `pubsub-jobs bootstrap --queue {queue}`" if queue else ""
            print(f"pubsub-jobs: not found ({exc.message}){hint}, or check "
                  "PUBSUB_JOBS_PROJECT_ID and PUBSUB_JOBS_PREFIX", file=sys.stderr)
            return EXIT_FAILED
        except gexc.GoogleAPICallError as exc:
            print(f"pubsub-jobs: Pub/Sub refused the call: {describe(exc)}", file=sys.stderr)
            return EXIT_FAILED

    return run


@_pubsub_errors
def _cmd_list(args: argparse.Namespace) -> int:
    jobs = dead.list_dead(args.queue, job_name=args.job_name, reason=args.reason,
                          limit=args.limit)
    if args.json:
        json.dump([j.to_json() for j in jobs], sys.stdout, indent=2)
        print()
        return 0
    if not jobs:
        print(f"no dead jobs in queue {args.queue}"
              + (" that match" if args.job_name or args.reason else ""))
        return 0
    rows = [("JOB_ID", "JOB_NAME", "REASON", "ATTEMPTS", "DEAD_LETTERED_AT", "ERROR")]
    for j in jobs:
        rows.append((
            j.id,
            j.job_name or "-",
            j.reason + ("*" if j.reason_derived else ""),
            str(j.attempts) if j.attempts is not None else "-",
            _when(j.dead_lettered_at),
            _one_line(j.error, 80) or "-",
        ))
    _table(rows, sys.stdout)
    if any(j.reason_derived for j in jobs):
        print(f"\n* derived: no reason recorded. {dead.DERIVED_REASON}: Pub/Sub forwarded the "
              "message after its delivery attempts ran out (a worker crashed or never settled "
              "it); ATTEMPTS is Pub/Sub's delivery count.")
    print(f"\n{len(jobs)} dead job(s) in queue {args.queue}"
          + (f" (at most {args.limit} shown)" if args.limit else ""))
    return 0


@_pubsub_errors
def _cmd_show(args: argparse.Namespace) -> int:
    try:
        job = dead.show(args.queue, args.job_id)
    except DeadJobNotFound as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        json.dump(job.to_json(), sys.stdout, indent=2)
        print()
        return 0
    print(_describe_job(job))
    return 0


@_pubsub_errors
def _cmd_retry(args: argparse.Namespace) -> int:
    stop = threading.Event()
    bar = _Progress("retrying", sys.stderr)
    with _stop_on_signals(stop):
        summary = dead.retry(
            args.queue, args.job_ids, all=args.all, job_name=args.job_name,
            reason=args.reason, batch_size=args.batch_size, progress=bar.update, stop=stop,
        )
    bar.finish()
    if not summary.selected and not summary.not_found:
        print(f"no dead jobs to retry in queue {args.queue}")
        return 0
    print(f"retried {len(summary.retried)} of {summary.selected} dead job(s) of queue "
          f"{args.queue} (republished to {summary.topic})"
          + (f"; {summary.duplicates} duplicate dead copies removed with them"
             if summary.duplicates else ""))
    for job_id, error in summary.failed:
        print(f"  not retried {job_id}: {error}")
    if summary.not_removed:
        print(f"  republished, but their dead copies could not be removed (retrying them again "
              f"would run them twice; purge them instead: pubsub-jobs dead purge {args.queue} "
              f"{' '.join(summary.not_removed)})")
    if summary.not_found:
        print(f"  not in the dead set: {' '.join(summary.not_found)}")
    if summary.interrupted:
        print(f"interrupted: {summary.remaining} dead job(s) not retried yet; run the same "
              "command again to carry on")
        return EXIT_INTERRUPTED
    return 0 if summary.ok else EXIT_FAILED


@_pubsub_errors
def _cmd_purge(args: argparse.Namespace) -> int:
    def confirm(jobs: list[DeadJob]) -> bool:
        if args.yes:
            return True
        reasons: dict[str, int] = {}
        for j in jobs:
            reasons[j.reason] = reasons.get(j.reason, 0) + 1
        detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        print(f"Purge {len(jobs)} dead job(s) of queue {args.queue} for good ({detail})? "
              "[y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = input()
        except EOFError:
            answer = ""
        return answer.strip().lower() in {"y", "yes"}

    summary = dead.purge(args.queue, args.job_ids, all=args.all, job_name=args.job_name,
                         reason=args.reason, confirm=confirm)
    if summary.cancelled:
        print("nothing purged")
        return EXIT_FAILED
    if summary.selected:
        print(f"purged {len(summary.purged)} dead job(s) of queue {args.queue}")
    else:
        print(f"no dead jobs to purge in queue {args.queue}")
    if summary.not_found:
        print(f"  not in the dead set: {' '.join(summary.not_found)}")
    return 0 if len(summary.purged) == summary.selected and not summary.not_found else 1


@_pubsub_errors
def _cmd_queues(args: argparse.Namespace) -> int:
    from pubsub_jobs.queues_status import queue_status

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


def _describe_job(job: DeadJob) -> str:
    lines = [
        f"job_id            {job.job_id or '-'}",
        f"job_name          {job.job_name or '-'}",
        f"queue             {job.queue}",
        f"reason            {job.reason}"
        + (f"  (derived: dead-lettered by the {job.dead_lettered_by}, which records no reason)"
           if job.reason_derived else ""),
        f"error             {job.error or '-'}",
        f"attempts          {job.attempts if job.attempts is not None else '-'}",
        f"dead_lettered_at  {_when(job.dead_lettered_at)}",
        f"message_id        {job.message_id}",
    ]
    if job.args is not None or job.kwargs is not None:
        lines.append(f"args              {json.dumps(job.args, ensure_ascii=False)}")
        lines.append(f"kwargs            {json.dumps(job.kwargs, ensure_ascii=False)}")
    else:
        lines.append(f"data              {job.data[:2000]!r}  (not a job's JSON arguments)")
    lines.append("attributes")
    width = max((len(k) for k in job.attributes), default=0)
    lines += [f"  {k:<{width}}  {v}" for k, v in sorted(job.attributes.items())]
    return "\n".join(lines)


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


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _one_line(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)]
        print("  ".join([*cells, row[-1]]).rstrip(), file=out)


class _Progress:
    """A one-line progress bar on stderr, redrawn with ``\\r``; silent when not a terminal."""

    def __init__(self, label: str, out: TextIO) -> None:
        self.label = label
        self.out = out
        self.active = out.isatty()
        self.drawn = False

    def update(self, done: int, total: int) -> None:
        if not self.active or total <= 0:
            return
        width = 30
        filled = width * done // total
        self.out.write(f"\r{self.label} {'#' * filled}{'.' * (width - filled)} "
                       f"{done}/{total} ({100 * done // total}%)")
        self.out.flush()
        self.drawn = True

    def finish(self) -> None:
        if self.drawn:
            self.out.write("\n")
            self.out.flush()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """First SIGINT/SIGTERM: finish the batch in flight, then stop. Second: exit at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    count = 0

    def handle(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count == 1:
            print(f"\n{signal.Signals(signum).name}: stopping after the jobs in flight "
                  "(again to exit at once, which may leave a republished job's dead copy "
                  "behind)", file=sys.stderr, flush=True)
            stop.set()
        else:
            os._exit(EXIT_INTERRUPTED)

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
