"""Draining queues until their delayed jobs have come out of Cloud Tasks and run.

A delayed (or unique) job is a task in the Cloud Tasks queue (``jobs-delayed``), a job of a
rate-limited queue one in that queue's ``jobs-Q-rate``, whose HTTP request
publishes the job to its queue's topic when due (see
:mod:`pubsub_jobs.adapters.cloud_tasks`). :func:`pending_delayed_jobs` lists the tasks
that will publish to some queues; :func:`drain_with_delayed` runs a worker until none is
left, every job it saw pending has reached the worker, and the queues are idle. Waiting for
the job itself rather than for a quiet moment after its task left matters: the emulator
takes a task off its list before it publishes, and the message may take a while to come.
"""

from __future__ import annotations

import importlib
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pubsub_jobs.adapters.cloud_tasks import (
    cloud_tasks_client,
    cloud_tasks_queue_path,
    tasks_queue_path,
)
from pubsub_jobs.message import format_time, utcnow
from pubsub_jobs.middleware import Middleware, load_middleware
from pubsub_jobs.settings import Settings
from pubsub_jobs.worker import QueueSpec, Worker

if TYPE_CHECKING:
    from pubsub_jobs.context import JobContext
    from pubsub_jobs.outcome import Outcome

__all__ = ["PendingDelayedJob", "drain_with_delayed", "pending_delayed_jobs"]

#: How often the Cloud Tasks queue is listed while draining.
_POLL_SECONDS = 0.2


@dataclass(frozen=True, slots=True)
class PendingDelayedJob:
    """A task of the Cloud Tasks queue that has yet to publish its job to ``queue``.

    ``dispatches`` counts the tries to publish so far; ``last_status`` says how the last
    one went, as Cloud Tasks reports it (``last_attempt.response_status``: its message, such
    as "HTTP status 404", else its gRPC code); a publish that failed is tried again.
    ``scheduled_at`` is the message's attribute as the task will publish it.
    """

    task: str
    queue: str
    job_name: str | None
    job_id: str | None
    due: datetime | None
    dispatches: int = 0
    last_status: str | None = None
    scheduled_at: str | None = None

    def describe(self) -> str:
        what = f"{self.job_name or '?'} (job id {self.job_id or '?'}, queue {self.queue})"
        if self.due is not None:
            seconds = (self.due - utcnow()).total_seconds()
            when = f"in {seconds:.0f} s" if seconds > 0 else f"{-seconds:.0f} s ago"
            what += f" due {format_time(self.due)} ({when})"
        if self.dispatches:
            what += f", published {self.dispatches} time(s) without success"
            if self.last_status is not None:
                what += f" (last: {self.last_status})"
        return what


def pending_delayed_jobs(
    queues: Sequence[str], settings: Settings, *, client: Any = None
) -> list[PendingDelayedJob]:
    """The delayed jobs Cloud Tasks still holds for ``queues`` (those of ``settings``'
    prefix), soonest first. Raises ``ConfigurationError`` when Cloud Tasks is not set up."""
    # the delayed-jobs queue, and the -rate queue of each rate-limited one
    parents = dict.fromkeys([cloud_tasks_queue_path(settings),
                             *(tasks_queue_path(settings, q) for q in queues)])
    targets = {f"/{settings.topic_path(q)}:publish": q for q in queues}
    own = client is None
    client = client or cloud_tasks_client(settings)
    tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
    try:
        tasks = [task for parent in parents for task in client.list_tasks(
            request={"parent": parent, "response_view": tasks_v2.Task.View.FULL})]
    finally:
        if own:
            client.transport.close()
    found = []
    for task in tasks:
        url = task.http_request.url
        queue = next((q for suffix, q in targets.items() if url.endswith(suffix)), None)
        if queue is None:
            continue
        attributes = _attributes(task.http_request.body)
        status = _attempt_status(task) if task.dispatch_count else None
        found.append(PendingDelayedJob(
            task=task.name,
            queue=queue,
            job_name=attributes.get("job_name"),
            job_id=attributes.get("job_id"),
            due=task.schedule_time or None,
            dispatches=task.dispatch_count,
            last_status=status,
            scheduled_at=attributes.get("scheduled_at"),
        ))
    return sorted(found, key=lambda p: (p.due is None, p.due or utcnow()))


def _attributes(body: bytes) -> dict[str, str]:
    """The attributes of the message a task publishes (``{}`` if the body is not ours)."""
    try:
        messages = json.loads(body)["messages"]
        attributes = messages[0].get("attributes", {})
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in attributes.items()}


def drain_with_delayed(
    queues: Sequence[str | QueueSpec],
    settings: Settings,
    *,
    idle: float,
    timeout: float,
    **worker_options: Any,
) -> Worker:
    """Run a worker on ``queues`` until Cloud Tasks holds no delayed job for them, each
    delayed job seen pending has reached the worker, and nothing has run or arrived for
    ``idle`` seconds; returns the worker.

    Raises ``TimeoutError`` naming what is still pending after ``timeout`` seconds, and at
    once when a pending job is due later than that.
    """
    names = [q.name if isinstance(q, QueueSpec) else QueueSpec.parse(q).name for q in queues]
    cloud_tasks_queue_path(settings)  # a missing setting fails here, before any worker
    arrivals = _Arrivals()
    given = worker_options.pop("middleware", None)
    middleware = [*(load_middleware(settings) if given is None else given), arrivals]
    worker = Worker(list(queues), settings=settings, burst=False, middleware=middleware,
                    **worker_options)
    client = cloud_tasks_client(settings)
    deadline = time.monotonic() + timeout
    failure: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    thread = threading.Thread(target=run, name="pubsub-jobs-drain", daemon=True)
    thread.start()
    seen: dict[str, PendingDelayedJob] = {}
    try:
        while thread.is_alive():
            now = time.monotonic()
            pending = pending_delayed_jobs(names, settings, client=client)
            seen.update((p.task, p) for p in pending)
            _fail_if_due_too_late(pending, deadline - now, timeout)
            held = {p.task for p in pending}
            on_the_way = [p for p in seen.values()
                          if p.task not in held and not arrivals.arrived(p)]
            if not pending and not on_the_way and _idle_for(worker) >= idle:
                break
            if now > deadline:
                raise TimeoutError(_still_busy(worker, pending, on_the_way, names, timeout))
            thread.join(_POLL_SECONDS)
    finally:
        worker.request_stop()
        thread.join()
        client.transport.close()
    if failure:
        raise failure[0]
    if worker.error is not None:
        raise RuntimeError(str(worker.error))
    return worker


class _Arrivals(Middleware):
    """Notes each message the worker received, by job id and due time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str | None]] = set()

    def _add(self, job_id: str, scheduled_at: str | None) -> None:
        with self._lock:
            self._seen.add((job_id, scheduled_at))

    def before_perform(self, context: JobContext) -> None:
        due = context.scheduled_at
        self._add(context.job_id, format_time(due) if due is not None else None)

    def on_rejected(self, queue: str, attributes: Mapping[str, str], outcome: Outcome) -> None:
        self._add(attributes.get("job_id", ""), attributes.get("scheduled_at"))

    def arrived(self, job: PendingDelayedJob) -> bool:
        with self._lock:
            return (job.job_id or "", job.scheduled_at) in self._seen


def _idle_for(worker: Worker) -> float:
    """Seconds since the worker last received or finished a job (0 while one runs)."""
    stats = worker.stats
    with stats.lock:
        if stats.in_flight:
            return 0.0
        return time.monotonic() - stats.last_activity


def _fail_if_due_too_late(
    pending: Sequence[PendingDelayedJob], remaining: float, timeout: float
) -> None:
    late = [p for p in pending
            if p.due is not None and (p.due - utcnow()).total_seconds() > remaining]
    if late:
        raise TimeoutError(
            f"drain_queues(wait_for_delayed=True) cannot wait for "
            f"{'; '.join(p.describe() for p in late)}: due after the timeout of {timeout:g} s. "
            "Give a larger timeout= or a shorter "
            "delay (or test it with the in-memory adapter, whose clock moves with advance())"
        )


def _still_busy(
    worker: Worker,
    pending: Sequence[PendingDelayedJob],
    on_the_way: Sequence[PendingDelayedJob],
    queues: Sequence[str],
    timeout: float,
) -> str:
    parts = [f"delayed job {p.describe()} still in Cloud Tasks" for p in pending]
    parts += [f"delayed job {p.describe()} left Cloud Tasks but never reached the worker"
              for p in on_the_way]
    with worker.stats.lock:
        running = [(queue, message.attributes) for queue, message, _ in
                   worker.stats.running.values()]
    parts += [f"job {attributes.get('job_name', '?')} (job id {attributes.get('job_id', '?')}, "
              f"queue {queue}) still running" for queue, attributes in running]
    if not parts:
        parts = ["jobs kept arriving"]
    return (f"queues {', '.join(queues)} were still busy after {timeout:g} s: "
            + "; ".join(parts))


def _attempt_status(task: Any) -> str | None:
    """How a task's last attempt went: the status message Cloud Tasks (or the emulator) gave
    it, else its gRPC code (``response_status`` is a ``google.rpc.Status``, not HTTP's); None
    while the attempt has no answer yet."""
    attempt = task.last_attempt
    status = attempt.response_status
    if status.message:
        return str(status.message)
    if status.code or "response_time" in attempt:
        return f"gRPC code {status.code}"
    return None
