"""Creating many Cloud Tasks tasks at once: what ``enqueue_many`` of delayed, unique or
rate-limited jobs does.

Every task is built (and checked) before any is sent. Tasks go in ``BatchCreateTasks``
requests of up to :data:`BATCH` per Cloud Tasks queue, :data:`IN_FLIGHT` requests at once;
the answer is a long-running operation whose metadata lists the requests that failed, each
with its status. Where the server answers ``UNIMPLEMENTED`` (or the client lacks the
method), the scheduler falls back to concurrent ``CreateTask`` calls for good.

Per task: ``ALREADY_EXISTS`` is a unique job's duplicate (or, for another job, an earlier
attempt that did succeed); a transient error is sent again under the adapters' retry policy;
anything else fails that job. The failures are raised together in a
:class:`~pubsub_jobs.errors.BulkEnqueueError`. Two jobs of one call with the same task name
(a unique job twice in one window) are sent once: the first one given; the other follows its
fate as a duplicate.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any, Protocol

import grpc
from google.api_core import exceptions as gexc

from pubsub_jobs.adapter import duplicate_of, result_for
from pubsub_jobs.adapters import _retry
from pubsub_jobs.errors import BulkEnqueueError, is_transient
from pubsub_jobs.message import EnqueuedJob, JobMessage
from pubsub_jobs.settings import Settings

log = logging.getLogger(__name__)

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")  # untyped: see cloud_tasks

#: Cloud Tasks' most tasks in one BatchCreateTasks request.
BATCH = 100
#: BatchCreateTasks requests of one call in flight at once.
IN_FLIGHT = 4
#: CreateTask calls in flight at once, where BatchCreateTasks is not offered.
SINGLES_IN_FLIGHT = 16

_CODES = {code.value[0]: code for code in grpc.StatusCode}


class CloudTasksScheduler(Protocol):
    """What this module uses of :class:`~pubsub_jobs.adapters.cloud_tasks.CloudTasksScheduler`
    (which imports this module)."""

    settings: Settings
    batch_create: bool

    @property
    def client(self) -> Any: ...
    def build_task(self, message: JobMessage) -> Any: ...
    def existing(self, message: JobMessage, name: str) -> EnqueuedJob: ...
    def enqueue_error(self, exc: BaseException, parent: str) -> Exception: ...
    def pool(self, name: str, size: int) -> Any: ...

#: One task to create: its index in the call, the job, the task.
_Item = tuple[int, JobMessage, Any]


def schedule_many(scheduler: CloudTasksScheduler, messages: Sequence[JobMessage]
                  ) -> list[EnqueuedJob]:
    """See :meth:`CloudTasksScheduler.schedule_many`."""
    tasks = [scheduler.build_task(m) for m in messages]  # all checked before any is sent
    first: dict[str, int] = {}
    pending: list[_Item] = []
    for index, (message, task) in enumerate(zip(messages, tasks, strict=True)):
        if first.setdefault(task.name, index) == index:
            pending.append((index, message, task))
    done: dict[int, EnqueuedJob] = {}
    errors: dict[int, BaseException] = {}
    raised: BaseException | None = None

    def send_round() -> None:
        nonlocal pending, raised
        again: list[_Item] = []
        transient: BaseException | None = None
        for chunk, outcomes in _send(scheduler, pending):
            for item, outcome in zip(chunk, outcomes, strict=True):
                index, message, task = item
                if outcome is None or isinstance(outcome, gexc.AlreadyExists):
                    done[index] = (result_for(message, None) if outcome is None
                                   else scheduler.existing(message, task.name))
                    errors.pop(index, None)
                    continue
                errors[index] = outcome
                if is_transient(outcome):
                    again.append(item)
                    transient = transient or outcome
        pending = again
        if transient is not None:
            raised = transient
            raise transient  # the policy decides whether the rest is sent again

    try:
        _retry.call(send_round, attempts=scheduler.settings.publish_attempts,
                    what=f"creating {len(pending)} tasks")
    except Exception as exc:
        if exc is not raised:  # not a request's error (those are in ``errors``): a bug
            raise
    results: list[EnqueuedJob | None] = []
    failed: list[tuple[JobMessage, BaseException]] = []
    first_failed = -1
    for index, (message, task) in enumerate(zip(messages, tasks, strict=True)):
        origin = first[task.name]
        if origin in errors:
            failed.append((message, errors[origin]))
            results.append(None)
            first_failed = index if first_failed < 0 else first_failed
        elif origin == index:
            results.append(done[index])
        else:
            results.append(duplicate_of(message, "the same task name earlier in this call")
                           if message.unique is not None else result_for(message, None))
    if failed:
        parent = tasks[first_failed].name.rsplit("/tasks/", 1)[0]
        error = scheduler.enqueue_error(failed[0][1], parent)
        raise BulkEnqueueError(
            f"{len(failed)} of {len(messages)} jobs were not scheduled; the first: {error}",
            enqueued=[r for r in results if r is not None], failed=failed)
    return [r for r in results if r is not None]


def _send(scheduler: CloudTasksScheduler, items: list[_Item]
          ) -> Iterator[tuple[list[_Item], list[BaseException | None]]]:
    """Send ``items`` in chunks of one Cloud Tasks queue each and yield each chunk with the
    outcome of each task: None (created) or the error (``AlreadyExists`` among them)."""
    chunks: list[tuple[str, list[_Item]]] = []
    filling: dict[str, list[_Item]] = {}
    for item in items:
        parent = item[2].name.rsplit("/tasks/", 1)[0]
        chunk = filling.setdefault(parent, [])
        chunk.append(item)
        if len(chunk) == BATCH:
            chunks.append((parent, filling.pop(parent)))
    chunks += filling.items()
    if len(chunks) == 1:  # one request: from this thread
        parent, chunk = chunks[0]
        yield chunk, _create(scheduler, parent, [item[2] for item in chunk])
        return
    pool = scheduler.pool("batch", IN_FLIGHT)
    sent: list[tuple[list[_Item], Future[list[BaseException | None]]]] = [
        (chunk, pool.submit(_create, scheduler, parent, [item[2] for item in chunk]))
        for parent, chunk in chunks]
    for chunk, future in sent:
        yield chunk, future.result()


def _create(scheduler: CloudTasksScheduler, parent: str, tasks: list[Any]
            ) -> list[BaseException | None]:
    """Create ``tasks`` in ``parent``: one BatchCreateTasks request, else one CreateTask
    call each, concurrently. Never raises: an error is each task's outcome."""
    if scheduler.batch_create:
        try:
            return _batch(scheduler, parent, tasks)
        except (gexc.MethodNotImplemented, AttributeError) as exc:
            scheduler.batch_create = False
            log.info("Cloud Tasks does not offer BatchCreateTasks here (%s): creating tasks "
                     "one by one, concurrently", exc)
        except Exception as exc:
            return [exc] * len(tasks)
    pool = scheduler.pool("create", SINGLES_IN_FLIGHT)
    return list(pool.map(lambda task: _create_one(scheduler, parent, task), tasks))


def _create_one(scheduler: CloudTasksScheduler, parent: str, task: Any
                ) -> BaseException | None:
    try:
        scheduler.client.create_task(parent=parent, task=task,
                                     timeout=scheduler.settings.publish_timeout)
    except Exception as exc:
        return exc
    return None


def _batch(scheduler: CloudTasksScheduler, parent: str, tasks: list[Any]
           ) -> list[BaseException | None]:
    """One BatchCreateTasks request; the operation's failed requests are their tasks'
    errors. An operation that failed as a whole without saying which (none listed) fails
    every task with its error."""
    timeout = scheduler.settings.publish_timeout
    operation = scheduler.client.batch_create_tasks(
        parent=parent, timeout=timeout,
        requests=[tasks_v2.CreateTaskRequest(parent=parent, task=task) for task in tasks])
    try:
        operation.result(timeout=timeout)
    except gexc.GoogleAPICallError as exc:
        failed = _failed_requests(operation)
        if not failed:
            return [exc] * len(tasks)
    else:
        failed = _failed_requests(operation)
    outcomes: list[BaseException | None] = [None] * len(tasks)
    for index, status in failed.items():
        code = _CODES.get(status.code, grpc.StatusCode.UNKNOWN)
        outcomes[index] = gexc.from_grpc_status(code, status.message)  # type: ignore[no-untyped-call]
    return outcomes


def _failed_requests(operation: Any) -> dict[int, Any]:
    metadata = operation.metadata
    return dict(metadata.failed_requests) if metadata is not None else {}
