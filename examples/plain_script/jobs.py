"""The jobs: importing this module registers them. The script that enqueues imports it, and
so does the worker, by the name given on its command line (``pubsub-jobs worker jobs``)."""

import logging

from pubsub_jobs import job

# The worker runs jobs in several threads at once: log rather than print, so that lines
# written together do not mix.
log = logging.getLogger(__name__)


@job  # queue "default"
def greet(name: str, *, greeting: str = "Hello") -> None:
    log.info("%s, %s!", greeting, name)
