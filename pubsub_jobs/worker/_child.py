"""A supervised worker process: ``python -m pubsub_jobs.worker._child``, started by the
supervisor with its :class:`~pubsub_jobs.worker.WorkerOptions` as JSON in the environment
(``PUBSUB_JOBS_WORKER_OPTIONS``).

A process entry point, like the command line: it logs and handles signals as the command
line does (the supervisor's SIGTERM stops it gracefully), then runs
:func:`pubsub_jobs.worker.run.run_worker`.
"""

from __future__ import annotations

import os
import sys

from pubsub_jobs._process import setup_logging, stop_on_signals
from pubsub_jobs.worker.run import run_worker
from pubsub_jobs.worker.supervisor import OPTIONS_ENV, child_options


def main() -> int:
    options = child_options(os.environ[OPTIONS_ENV])
    setup_logging(options.log_level, options.log_format)
    return run_worker(options, on_signals=stop_on_signals)


if __name__ == "__main__":
    sys.exit(main())
