"""A supervised worker process: ``python -m pubsub_jobs.cli._child``, started by the
supervisor with its :class:`~pubsub_jobs.worker.WorkerOptions` as JSON in the environment
(``PUBSUB_JOBS_WORKER_OPTIONS``)."""

from __future__ import annotations

import os
import sys

from pubsub_jobs.cli.logs import setup_logging
from pubsub_jobs.cli.worker import run_worker
from pubsub_jobs.worker.supervisor import OPTIONS_ENV, child_options


def main() -> int:
    options = child_options(os.environ[OPTIONS_ENV])
    setup_logging(options.log_level, options.log_format)
    return run_worker(options)


if __name__ == "__main__":
    sys.exit(main())
