"""Whether a worker is healthy, and what ``/status`` shows of it.

A worker is *stuck* when a stream has failed, when a job has run longer than
``stuck_after`` seconds, or when messages keep arriving but no job has succeeded (been acked)
for ``stuck_after`` seconds (every job failing points at a broken dependency). ``/healthz``
answers 503 then, so an orchestrator restarts it; ``/status`` always answers 200.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pubsub_jobs.delivery import DeliveryStats
from pubsub_jobs.queues import declared_queue
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker.options import QueueSpec


def worker_status(
    stats: DeliveryStats,
    *,
    queues: Sequence[QueueSpec],
    settings: Settings,
    stuck_after: float,
    streams_running: Mapping[str, int],
    failures: Sequence[str],
    subscription_limits: Mapping[str, int],
) -> dict[str, Any]:
    """The status of one worker process: ok or stuck (with reasons), queues, running jobs,
    counts. ``failures`` are reasons known from elsewhere (a failed stream)."""
    now = time.monotonic()
    with stats.lock:
        counts = stats.snapshot_locked()
        running = [(queue, message.attributes, started)
                   for queue, message, started in stats.running.values()]
        last_activity = stats.last_activity
        last_succeeded = stats.last_succeeded
        last_received = stats.last_received
        unacked = stats.received_since_success
    reasons = list(failures)
    for _queue, attributes, started in running:
        if now - started > stuck_after:
            reasons.append(f"job {attributes.get('job_name', '?')} "
                           f"{attributes.get('job_id', '?')} has run for {now - started:.0f}s")
    if unacked and now - last_succeeded > stuck_after and now - last_received < stuck_after:
        reasons.append(f"no job has succeeded for {now - last_succeeded:.0f}s while "
                       "messages keep arriving")
    wall = time.time()
    return {
        "status": "stuck" if reasons else "ok",
        "reasons": reasons,
        "pid": os.getpid(),
        "uptime_seconds": round(now - stats.started_at, 1),
        "queues": [
            {"name": q.name, "subscription": settings.subscription_path(q.name),
             "concurrency": q.concurrency, "streams": q.streams,
             "streams_running": streams_running.get(q.name, 0),
             "max_delivery_attempts": subscription_limits.get(q.name),
             **_declared(q.name)}
            for q in queues
        ],
        "in_flight": [
            {"queue": queue, "job_name": attributes.get("job_name", "?"),
             "job_id": attributes.get("job_id", "?"), "age_seconds": round(now - started, 3)}
            for queue, attributes, started in running
        ],
        **{k: v for k, v in counts.items() if k != "in_flight"},
        "last_activity": datetime.fromtimestamp(wall - (now - last_activity), UTC).isoformat(),
        "stuck_after_seconds": stuck_after,
    }


def _declared(queue: str) -> dict[str, Any]:
    """What the queue's declaration in code says (:func:`pubsub_jobs.queue`); a queue not
    declared is neither ordered nor exactly-once."""
    declared = declared_queue(queue)
    return {"declared": declared is not None,
            "ordered": declared is not None and declared.ordered,
            "exactly_once": declared is not None and declared.exactly_once,
            "rate_limit": declared.rate_limit if declared is not None else None}
