"""The emulator's state: queues, their tasks, and the names of tasks that recently left.

One lock (a condition, which the dispatcher waits on) guards everything. Times are Unix
seconds from ``clock`` (``time.time`` unless a test gives its own). A task is dispatched
when due (``schedule_time``), while its queue runs, its bucket has a token and fewer than
``max_concurrent_dispatches`` of its tasks are out; its name stays taken for
``tombstone_seconds`` after it completed, gave up or was deleted or purged.
"""

from __future__ import annotations

import heapq
import importlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc

from pubsub_jobs.emulator.tasks.names import (
    ApiError,
    check_location,
    check_queue_name,
    check_task_name,
    queue_of_task,
)
from pubsub_jobs.emulator.tasks.policy import (
    TokenBucket,
    fill_queue_defaults,
    retry_policy,
)
from pubsub_jobs.emulator.tasks.shown import attempt_status, shown_task
from pubsub_jobs.emulator.tasks.validate import check_new_task, utc

__all__ = ["DEFAULT_TOMBSTONE_SECONDS", "Dispatch", "TaskStore"]

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")

DEFAULT_TOMBSTONE_SECONDS = 3600.0
"""How long a task's name stays taken after it left: Cloud Tasks says about an hour."""


@dataclass(slots=True, eq=False)
class _Task:
    task: Any  # tasks_v2.Task, as FULL view shows it
    due: float
    seq: int
    in_flight: bool = False
    forced: bool = False
    first_dispatch: float = 0.0


@dataclass(slots=True, eq=False)
class _Queue:
    queue: Any  # tasks_v2.Queue
    bucket: TokenBucket
    tasks: dict[str, _Task] = field(default_factory=dict)
    heap: list[tuple[float, int, str]] = field(default_factory=list)
    forced: list[str] = field(default_factory=list)
    in_flight: int = 0

    def running(self) -> bool:
        return bool(self.queue.state == tasks_v2.Queue.State.RUNNING)


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One attempt to send a task's HTTP request, handed to the dispatcher."""

    queue: str
    task: str
    seq: int
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    deadline: float
    owner: _Queue = field(repr=False)


class TaskStore:
    """Queues and tasks, with Cloud Tasks' answers: see the module docstring."""

    def __init__(
        self,
        *,
        tombstone_seconds: float = DEFAULT_TOMBSTONE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.tombstone_seconds = tombstone_seconds
        self.clock = clock
        self.changed = threading.Condition()
        self._queues: dict[str, _Queue] = {}
        self._tombstones: dict[str, float] = {}
        self._seq = 0

    # ---------------------------------------------------------------------- queues

    def _queue(self, name: str) -> _Queue:
        found = self._queues.get(check_queue_name(name))
        if found is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND, f"Queue {name} does not exist")
        return found

    def create_queue(self, parent: str, queue: Any) -> Any:
        check_location(parent)
        check_queue_name(queue.name)
        if queue.name.rsplit("/queues/", 1)[0] != parent:
            raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Queue {queue.name} is not in the location {parent}")
        if "http_target" in queue or "app_engine_routing_override" in queue:
            raise ApiError(grpc.StatusCode.UNIMPLEMENTED,
                           "Queue-level http_target and app_engine_routing_override are not "
                           "emulated")
        with self.changed:
            if queue.name in self._queues:
                raise ApiError(grpc.StatusCode.ALREADY_EXISTS, f"Queue {queue.name} already exists")
            stored = tasks_v2.Queue(queue)
            fill_queue_defaults(stored)
            stored.state = tasks_v2.Queue.State.RUNNING
            limits = stored.rate_limits
            self._queues[stored.name] = _Queue(stored, TokenBucket(
                limits.max_dispatches_per_second, limits.max_burst_size, self.clock()))
            return tasks_v2.Queue(stored)

    def get_queue(self, name: str) -> Any:
        with self.changed:
            return tasks_v2.Queue(self._queue(name).queue)

    def list_queues(self, parent: str, state: Any = None) -> list[Any]:
        check_location(parent)
        with self.changed:
            return [tasks_v2.Queue(q.queue) for name, q in sorted(self._queues.items())
                    if name.rsplit("/queues/", 1)[0] == parent
                    and (state is None or q.queue.state == state)]

    def update_queue(self, queue: Any, paths: list[str]) -> Any:
        """Change the fields ``paths`` names (all that ``queue`` sets when none); a queue
        that does not exist is created, as Cloud Tasks does."""
        name = check_queue_name(queue.name)
        with self.changed:
            if name not in self._queues:
                return self.create_queue(name.rsplit("/queues/", 1)[0], queue)
            current = self._queues[name]
            wanted = tasks_v2.Queue(current.queue)
            paths = paths or [f for f in ("rate_limits", "retry_config") if f in queue]
            for path in paths:
                top, _, leaf = path.partition(".")
                if top not in ("rate_limits", "retry_config"):
                    raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"update_mask path {path!r} cannot be updated here")
                if leaf:
                    setattr(getattr(wanted, top), leaf, getattr(getattr(queue, top), leaf))
                else:
                    setattr(wanted, top, getattr(queue, top))
            wanted.rate_limits.max_burst_size = 0
            fill_queue_defaults(wanted)
            current.queue = wanted
            limits = wanted.rate_limits
            current.bucket.rate = limits.max_dispatches_per_second
            current.bucket.capacity = limits.max_burst_size
            self.changed.notify_all()
            return tasks_v2.Queue(wanted)

    def delete_queue(self, name: str) -> None:
        with self.changed:
            self._queue(name)
            del self._queues[name]

    def set_state(self, name: str, state: Any) -> Any:
        """Pause or resume a queue."""
        with self.changed:
            queue = self._queue(name)
            queue.queue.state = state
            self.changed.notify_all()
            return tasks_v2.Queue(queue.queue)

    def purge_queue(self, name: str) -> Any:
        with self.changed:
            queue = self._queue(name)
            now = self.clock()
            for task_name in list(queue.tasks):
                self._remove(queue, task_name, now)
            queue.queue.purge_time = utc(now)
            return tasks_v2.Queue(queue.queue)

    # ---------------------------------------------------------------------- tasks

    def _tombstoned(self, name: str, now: float) -> bool:
        until = self._tombstones.get(name)
        if until is None:
            return False
        if until > now:
            return True
        del self._tombstones[name]
        return False

    def _remove(self, queue: _Queue, name: str, now: float) -> None:
        """Take a task off its queue; its name stays taken for ``tombstone_seconds``."""
        queue.tasks.pop(name, None)
        if self.tombstone_seconds > 0:
            self._tombstones[name] = now + self.tombstone_seconds
        if len(self._tombstones) > 10_000:  # forget the expired ones now and then
            self._tombstones = {n: t for n, t in self._tombstones.items() if t > now}

    def _task(self, name: str) -> tuple[_Queue, _Task]:
        queue = self._queue(queue_of_task(check_task_name(name)))
        entry = queue.tasks.get(name)
        if entry is None:
            raise ApiError(grpc.StatusCode.NOT_FOUND,
                           f"The task no longer exists, though a task with this name existed "
                           f"recently: {name}" if name in self._tombstones
                           else f"Task {name} does not exist")
        return queue, entry

    def create_task(self, parent: str, task: Any, view: int = 0) -> Any:
        with self.changed:
            queue = self._queue(parent)
            now = self.clock()
            task = tasks_v2.Task(task)
            if task.name:
                if queue_of_task(check_task_name(task.name)) != parent:
                    raise ApiError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Task {task.name} is not in the queue {parent}")
                if task.name in queue.tasks or self._tombstoned(task.name, now):
                    raise ApiError(grpc.StatusCode.ALREADY_EXISTS,
                                   f"Requested entity already exists: {task.name}")
            due = check_new_task(task, now)
            if not task.name:
                task.name = self._new_name(queue, parent, now)
            task.create_time = utc(int(now))
            for output in ("dispatch_count", "response_count", "first_attempt", "last_attempt"):
                if output in task:
                    delattr(task, output)
            self._seq += 1
            queue.tasks[task.name] = _Task(task, due, self._seq)
            heapq.heappush(queue.heap, (due, self._seq, task.name))
            self.changed.notify_all()
            return shown_task(task, view)

    def _new_name(self, queue: _Queue, parent: str, now: float) -> str:
        while True:
            name = f"{parent}/tasks/{secrets.randbelow(9 * 10**18) + 10**18}"
            if name not in queue.tasks and not self._tombstoned(name, now):
                return name

    def get_task(self, name: str, view: int = 0) -> Any:
        with self.changed:
            return shown_task(self._task(name)[1].task, view)

    def list_tasks(self, parent: str, view: int = 0) -> list[Any]:
        with self.changed:
            queue = self._queue(parent)
            entries = sorted(queue.tasks.values(), key=lambda e: (e.due, e.task.name))
            return [shown_task(e.task, view) for e in entries]

    def delete_task(self, name: str) -> None:
        with self.changed:
            queue, _ = self._task(name)
            self._remove(queue, name, self.clock())

    def run_task(self, name: str, view: int = 0) -> Any:
        """Dispatch the task now, whatever its schedule, its queue's state or rate."""
        with self.changed:
            queue, entry = self._task(name)
            if not entry.in_flight:
                entry.forced = True
                queue.forced.append(name)
                self.changed.notify_all()
            return shown_task(entry.task, view)

    # ---------------------------------------------------------------------- dispatching

    def take_due(self) -> tuple[list[Dispatch], float | None]:
        """The attempts to start now (each task marked out, counted, its bucket spent), and
        the seconds until there may be more (None: nothing to wait for but a change).
        Call with ``changed`` held."""
        now = self.clock()
        taken: list[Dispatch] = []
        wait: float | None = None
        for queue in self._queues.values():
            while queue.forced:
                entry = queue.tasks.get(queue.forced.pop())
                if entry is not None and entry.forced and not entry.in_flight:
                    taken.append(self._start(queue, entry, now))
            if not queue.running():
                continue
            limit = queue.queue.rate_limits.max_concurrent_dispatches
            heap = queue.heap
            while heap:
                due, seq, name = heap[0]
                if due > now:
                    wait = min(wait, due - now) if wait is not None else due - now
                    break
                entry = queue.tasks.get(name)
                if entry is None or entry.seq != seq or entry.in_flight:
                    heapq.heappop(heap)
                    continue
                if queue.in_flight >= limit:
                    break  # a finished attempt notifies
                if not queue.bucket.take(now):
                    token = queue.bucket.next_token_in(now)
                    wait = min(wait, token) if wait is not None else token
                    break
                heapq.heappop(heap)
                taken.append(self._start(queue, entry, now))
        return taken, wait

    def _start(self, queue: _Queue, entry: _Task, now: float) -> Dispatch:
        task = entry.task
        entry.in_flight, entry.forced = True, False
        queue.in_flight += 1
        task.dispatch_count += 1
        if task.dispatch_count == 1:
            entry.first_dispatch = now
            task.first_attempt = tasks_v2.Attempt(dispatch_time=utc(now))
        task.last_attempt = tasks_v2.Attempt(schedule_time=task.schedule_time,
                                             dispatch_time=utc(now))
        request = task.http_request
        headers = {
            "User-Agent": "Google-Cloud-Tasks",
            "X-CloudTasks-QueueName": queue.queue.name.rsplit("/", 1)[1],
            "X-CloudTasks-TaskName": task.name.rsplit("/", 1)[1],
            "X-CloudTasks-TaskRetryCount": str(task.dispatch_count - 1),
            "X-CloudTasks-TaskExecutionCount": str(task.response_count),
            "X-CloudTasks-TaskETA": f"{entry.due:.6f}",
        }
        headers.update({k: v for k, v in request.headers.items()
                        if k.lower() not in ("host", "content-length", "user-agent")})
        if request.body and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/octet-stream"
        return Dispatch(
            queue=queue.queue.name, task=task.name, seq=entry.seq,
            method=tasks_v2.HttpMethod(request.http_method).name, url=request.url,
            headers=headers, body=bytes(request.body),
            deadline=task.dispatch_deadline.total_seconds(), owner=queue,
        )

    def finish(self, dispatch: Dispatch, status: int | None, error: str = "") -> None:
        """Record the answer to ``dispatch``: HTTP ``status``, or None and ``error`` when
        none came (a timeout, a refused connection). A 2xx completes the task; anything
        else schedules a retry after the backoff, or gives up after the last attempt."""
        with self.changed:
            now = self.clock()
            queue = dispatch.owner
            queue.in_flight -= 1
            self.changed.notify_all()
            entry = queue.tasks.get(dispatch.task)
            if self._queues.get(dispatch.queue) is not queue or entry is None \
                    or entry.seq != dispatch.seq:
                return  # deleted or purged meanwhile: the answer changes nothing
            entry.in_flight = False
            task = entry.task
            attempt = task.last_attempt
            if status is not None:
                task.response_count += 1
                attempt.response_time = utc(now)
            attempt.response_status = attempt_status(status, error)
            if status is not None and 200 <= status < 300:
                self._remove(queue, task.name, now)
                return
            policy = retry_policy(queue.queue.retry_config,
                                  task.retry_config if "retry_config" in task else None)
            if policy.gives_up(task.dispatch_count, now - entry.first_dispatch):
                self._remove(queue, task.name, now)
                return
            self._seq += 1
            entry.seq = self._seq
            entry.due = now + policy.backoff(task.dispatch_count)
            task.schedule_time = utc(entry.due)
            heapq.heappush(queue.heap, (entry.due, entry.seq, task.name))

