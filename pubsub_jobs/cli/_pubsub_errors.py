"""What the operating commands (``dead``, ``queues``) print when Pub/Sub refuses a call."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable

from pubsub_jobs.errors import describe

#: Exit code of an operating command when something was not found or failed.
EXIT_FAILED = 1

Command = Callable[[argparse.Namespace], int]


def pubsub_errors(command: Command) -> Command:
    """Turn a missing subscription or topic into a sentence and exit code 1."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        # here, not at the top: every `pubsub-jobs` command builds the parsers that use this
        from google.api_core import exceptions as gexc

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
