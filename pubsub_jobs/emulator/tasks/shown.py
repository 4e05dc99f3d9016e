"""What Cloud Tasks shows: a task in the view asked for, the status of an attempt."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["attempt_status", "shown_task"]

tasks_v2: Any = importlib.import_module("google.cloud.tasks_v2")
_status_pb2: Any = importlib.import_module("google.rpc.status_pb2")


_HTTP_TO_RPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 10, 429: 8, 499: 1, 501: 12, 503: 14,
                504: 4}


def attempt_status(status: int | None, error: str) -> Any:
    """The ``google.rpc.Status`` Cloud Tasks records for an attempt's HTTP answer."""
    if status is None:
        code = 4 if "timed out" in error else 14  # DEADLINE_EXCEEDED, UNAVAILABLE
        return _status_pb2.Status(code=code, message=error)
    if 200 <= status < 300:
        code = 0
    else:
        code = _HTTP_TO_RPC.get(status, 9 if status < 500 else 13)  # FAILED_PRECONDITION, INTERNAL
    return _status_pb2.Status(code=code, message=f"HTTP status {status}")


def shown_task(task: Any, view: int) -> Any:
    """A copy of ``task`` as the ``view`` asked for shows it: BASIC (the default) leaves
    out the request body."""
    shown = tasks_v2.Task(task)
    if view == tasks_v2.Task.View.FULL:
        shown.view = tasks_v2.Task.View.FULL
    else:
        shown.view = tasks_v2.Task.View.BASIC
        shown.http_request.body = b""
    return shown
