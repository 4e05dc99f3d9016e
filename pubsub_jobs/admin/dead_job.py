"""The dead-job model, where the operations on the dead set import it from.

It lives in the core (:mod:`pubsub_jobs.dead_job`) so that the in-memory adapter, below
``admin``, builds the same :class:`DeadJob` as the command line and the dashboard.
"""

from pubsub_jobs.dead_job import (
    DERIVED_REASON,
    MAX_JSON_DEPTH,
    PUBSUB_DEAD_LETTER_PREFIX,
    RETRY_ATTRIBUTES,
    DeadJob,
    DeadLetteredBy,
    sort_dead,
)

__all__ = [
    "DERIVED_REASON",
    "MAX_JSON_DEPTH",
    "PUBSUB_DEAD_LETTER_PREFIX",
    "RETRY_ATTRIBUTES",
    "DeadJob",
    "DeadLetteredBy",
    "sort_dead",
]
