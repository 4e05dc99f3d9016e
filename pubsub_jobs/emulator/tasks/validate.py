"""Checking a task as Cloud Tasks does on ``CreateTask``, and filling in what it fills in.

Refused with ``INVALID_ARGUMENT``: a task over 1 MB (serialized, as pubsub-jobs' adapter
counts it), a ``schedule_time`` more than 30 days ahead, a ``dispatch_deadline`` outside
15 s to 30 min, an HTTP request without an ``http://`` or ``https://`` URL, a body on a
method other than POST, PUT or PATCH. App Engine tasks are not emulated (``UNIMPLEMENTED``).
An ``oauth_token`` or ``oidc_token`` is accepted and ignored: the emulator mints no token.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from pubsub_jobs.emulator.tasks.names import ApiError
from pubsub_jobs.emulator.tasks.policy import check_task_retry

__all__ = ["MAX_SCHEDULE_AHEAD", "MAX_TASK_BYTES", "check_new_task", "utc"]

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")

MAX_TASK_BYTES = 1_000_000
MAX_SCHEDULE_AHEAD = timedelta(days=30)
DEFAULT_DEADLINE = timedelta(minutes=10)
MIN_DEADLINE = timedelta(seconds=15)
MAX_DEADLINE = timedelta(minutes=30)
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def utc(seconds: float) -> datetime:
    """The aware UTC datetime of Unix time ``seconds``."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def _invalid(message: str) -> ApiError:
    return ApiError(grpc.StatusCode.INVALID_ARGUMENT, message)


def check_new_task(task: Any, now: float) -> float:
    """Check ``task`` (a ``tasks_v2.Task`` about to be created), fill in its defaults
    (method POST, a 10 min deadline, ``schedule_time`` now) and return when it is due."""
    size = len(tasks_v2.Task.serialize(task))
    if size > MAX_TASK_BYTES:
        raise _invalid(f"Task size too large: {size:,} bytes (the limit is "
                       f"{MAX_TASK_BYTES:,})")
    if "app_engine_http_request" in task:
        raise ApiError(grpc.StatusCode.UNIMPLEMENTED,
                       "App Engine tasks are not emulated; use an HTTP task (http_request)")
    if "http_request" not in task:
        raise _invalid("A task needs an http_request (its target)")
    _check_http(task.http_request)
    deadline = task.dispatch_deadline or DEFAULT_DEADLINE
    if not MIN_DEADLINE <= deadline <= MAX_DEADLINE:
        raise _invalid(f"Task.dispatch_deadline must be between 15s and 1800s (got "
                       f"{deadline.total_seconds():g}s)")
    task.dispatch_deadline = deadline
    if "retry_config" in task:
        check_task_retry(task.retry_config)
    if "schedule_time" in task:
        due = float(task.schedule_time.timestamp())
        if due - now > MAX_SCHEDULE_AHEAD.total_seconds():
            raise _invalid("The Task.scheduleTime is too far in the future. Specified time is "
                           "more than 30 days in the future.")
    else:
        due = now
        task.schedule_time = utc(now)
    return due


def _check_http(request: Any) -> None:
    url = request.url
    if not url.startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise _invalid(f"HttpRequest.url must be an http:// or https:// URL (got {url!r})")
    if len(url) > 2083:
        raise _invalid("HttpRequest.url must be at most 2083 characters")
    if request.http_method == tasks_v2.HttpMethod.HTTP_METHOD_UNSPECIFIED:
        request.http_method = tasks_v2.HttpMethod.POST
    method = tasks_v2.HttpMethod(request.http_method).name
    if request.body and method not in _BODY_METHODS:
        raise _invalid(f"HttpRequest.body is allowed only with POST, PUT or PATCH (not "
                       f"{method})")
