"""``pubsub-jobs dead list/show/retry/purge``: a queue's dead set from the command line.

The work is done by :mod:`pubsub_jobs.dead`, which scripts can use directly. What a
message carries (ids, names, errors, attributes, arguments) reaches the terminal with its
control and other unprintable characters escaped (``\\x1b``, ``\\r``, ``\\n``, ``\\u202e``),
so a message cannot move the cursor, clear the screen or fake lines of the output;
``--json`` is escaped by JSON itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from pubsub_jobs._process import EXIT_INTERRUPTED, stop_on_signals
from pubsub_jobs.cli._pubsub_errors import EXIT_FAILED, pubsub_errors
from pubsub_jobs.dead.job import DERIVED_REASON, REASONS, DeadJob
from pubsub_jobs.errors import DeadJobNotFound

# The commands import the dead set's operations (and their clients) when they run: every
# `pubsub-jobs` run builds this parser. The dead job's module is in the core: light.

#: Bytes of undecodable data ``dead show`` prints.
_DATA_PREVIEW = 2000


def register(sub: Any) -> None:
    """Add ``dead`` (list, show, retry, purge) to the subcommands ``sub``."""
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


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--job-name", metavar="NAME", help="only jobs of this name")
    parser.add_argument("--reason", metavar="REASON",
                        help=f"only this reason ({', '.join(REASONS)})")


@pubsub_errors
def _cmd_list(args: argparse.Namespace) -> int:
    from pubsub_jobs.dead.operations import list_dead

    jobs = list_dead(args.queue, job_name=args.job_name, reason=args.reason, limit=args.limit)
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
            _printable(j.id),
            _printable(j.job_name or "-"),
            _printable(j.reason) + ("*" if j.reason_derived else ""),
            str(j.attempts) if j.attempts is not None else "-",
            _when(j.dead_lettered_at),
            _one_line(j.error, 80) or "-",
        ))
    _table(rows, sys.stdout)
    if any(j.reason_derived for j in jobs):
        print(f"\n* derived: no reason recorded. {DERIVED_REASON}: Pub/Sub forwarded the "
              "message after its delivery attempts ran out (a worker crashed or never settled "
              "it); ATTEMPTS is Pub/Sub's delivery count.")
    print(f"\n{len(jobs)} dead job(s) in queue {args.queue}"
          + (f" (at most {args.limit} shown)" if args.limit else ""))
    return 0


@pubsub_errors
def _cmd_show(args: argparse.Namespace) -> int:
    from pubsub_jobs.dead.operations import show

    try:
        job = show(args.queue, args.job_id)
    except DeadJobNotFound as exc:
        print(f"pubsub-jobs: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        json.dump(job.to_json(), sys.stdout, indent=2)
        print()
        return 0
    print(_describe_job(job))
    return 0


@pubsub_errors
def _cmd_retry(args: argparse.Namespace) -> int:
    from pubsub_jobs.dead.operations import retry

    stop = threading.Event()
    bar = _Progress("retrying", sys.stderr)
    with stop_on_signals(
        stop.set,
        first_message="stopping after the jobs in flight (again to exit at once, which may "
        "leave a republished job's dead copy behind)",
    ):
        summary = retry(
            args.queue, args.job_ids, every=args.all, job_name=args.job_name,
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
        print(f"  not retried {_printable(job_id)}: {_printable(error)}")
    if summary.not_removed:
        print(f"  republished, but their dead copies could not be removed (retrying them again "
              f"would run them twice; purge them instead: pubsub-jobs dead purge {args.queue} "
              f"{_ids(summary.not_removed)})")
    if summary.not_found:
        print(f"  not in the dead set: {_ids(summary.not_found)}")
    if summary.interrupted:
        print(f"interrupted: {summary.remaining} dead job(s) not retried yet; run the same "
              "command again to carry on")
        return EXIT_INTERRUPTED
    return 0 if summary.ok else EXIT_FAILED


@pubsub_errors
def _cmd_purge(args: argparse.Namespace) -> int:
    from pubsub_jobs.dead.operations import purge

    def confirm(jobs: list[DeadJob]) -> bool:
        if args.yes:
            return True
        reasons: dict[str, int] = {}
        for j in jobs:
            reasons[j.reason] = reasons.get(j.reason, 0) + 1
        detail = ", ".join(f"{n} {_printable(r)}" for r, n in sorted(reasons.items()))
        print(f"Purge {len(jobs)} dead job(s) of queue {args.queue} for good ({detail})? "
              "[y/N] ", end="", file=sys.stderr, flush=True)
        try:
            answer = input()
        except EOFError:
            answer = ""
        return answer.strip().lower() in {"y", "yes"}

    summary = purge(args.queue, args.job_ids, every=args.all, job_name=args.job_name,
                    reason=args.reason, confirm=confirm)
    if summary.cancelled:
        print("nothing purged")
        return EXIT_FAILED
    if summary.selected:
        print(f"purged {len(summary.purged)} dead job(s) of queue {args.queue}")
    else:
        print(f"no dead jobs to purge in queue {args.queue}")
    if summary.not_found:
        print(f"  not in the dead set: {_ids(summary.not_found)}")
    return 0 if len(summary.purged) == summary.selected and not summary.not_found else 1


def _describe_job(job: DeadJob) -> str:
    p = _printable
    lines = [
        f"job_id            {p(job.job_id or '-')}",
        f"job_name          {p(job.job_name or '-')}",
        f"queue             {job.queue}",
        f"reason            {p(job.reason)}"
        + (f"  (derived: dead-lettered by the {job.dead_lettered_by}, which records no reason)"
           if job.reason_derived else ""),
        f"error             {p(job.error or '-')}",
        f"attempts          {job.attempts if job.attempts is not None else '-'}",
        f"dead_lettered_at  {_when(job.dead_lettered_at)}",
        f"message_id        {p(job.message_id)}",
    ]
    undecodable = f"<undecodable: {job.decode_error}>"
    lines.append("args              " + (
        undecodable if job.args is None else p(json.dumps(job.args, ensure_ascii=False))))
    lines.append("kwargs            " + (
        undecodable if job.kwargs is None else p(json.dumps(job.kwargs, ensure_ascii=False))))
    if job.decode_error is not None:
        more = len(job.data) - _DATA_PREVIEW
        lines.append(f"data              {job.data[:_DATA_PREVIEW]!r}"
                     + (f"... ({more:,} more bytes)" if more > 0 else ""))
    lines.append("attributes")
    keys = {k: p(k) for k in job.attributes}
    width = max((len(k) for k in keys.values()), default=0)
    lines += [f"  {keys[k]:<{width}}  {p(v)}" for k, v in sorted(job.attributes.items())]
    return "\n".join(lines)


def _printable(text: str) -> str:
    """``text`` with every unprintable character (controls, escapes, line and paragraph
    separators, bidirectional overrides) written as a Python escape: safe on a terminal."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char)
    if named is not None:
        return named
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def _ids(ids: Sequence[str]) -> str:
    return " ".join(_printable(i) for i in ids)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "-"


def _one_line(text: str, width: int) -> str:
    text = _printable(" ".join(text.split()))
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
