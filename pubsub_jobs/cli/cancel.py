"""``pubsub-jobs cancel QUEUE JOB_ID``: delete a job still waiting in Cloud Tasks.

Exit 0 when the job was cancelled, 1 when no such job waits (it already left for Pub/Sub,
where it will run or ran, or it was never enqueued delayed, unique or rate-limited), 2 with a
sentence when the cancel could not be tried (a setting missing, Cloud Tasks refusing).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pubsub_jobs.cli._pubsub_errors import EXIT_FAILED
from pubsub_jobs.settings import get_settings


def register(sub: Any) -> None:
    """Add ``cancel`` to the subcommands ``sub``."""
    p = sub.add_parser(
        "cancel", help="cancel a job still waiting in Cloud Tasks (delayed, unique or "
                       "rate-limited)")
    p.add_argument("queue", metavar="QUEUE", help="the job's queue")
    p.add_argument("job_id", metavar="JOB_ID", help="the job's id, as enqueue returned it")
    p.set_defaults(func=_cmd_cancel)


def _cmd_cancel(args: argparse.Namespace) -> int:
    # the Google clients load with the adapter: on use only
    from pubsub_jobs.adapters.cloud_tasks import log as quiet
    from pubsub_jobs.adapters.cloud_tasks import tasks_queue_path
    from pubsub_jobs.adapters.pubsub import PubSubAdapter

    settings = get_settings()
    waiting_in = tasks_queue_path(settings, args.queue)  # no location: a sentence, exit 2
    adapter = PubSubAdapter(settings)
    # The command says what happened itself: the library's INFO line of it would repeat it.
    level = quiet.level
    if args.log_level == "INFO":
        quiet.setLevel(logging.WARNING)
    try:
        cancelled = adapter.cancel(args.job_id, args.queue)
    finally:
        quiet.setLevel(level)
        adapter.close()
    if cancelled:
        print(f"cancelled job {args.job_id} of queue {args.queue} (it was waiting in Cloud "
              f"Tasks queue {waiting_in})")
        return 0
    print(f"pubsub-jobs: job {args.job_id} of queue {args.queue} was not cancelled: it does "
          f"not wait in Cloud Tasks queue {waiting_in}. It already left for Pub/Sub (it will "
          "run, or ran; a job in Pub/Sub cannot be cancelled), or no such job was enqueued "
          "delayed, unique or rate-limited", file=sys.stderr)
    return EXIT_FAILED
